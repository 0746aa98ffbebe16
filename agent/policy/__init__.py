"""Policies: YAML files that say which containers get which limits, syscall, network and
threshold rules, and what happens when a rule is broken.

The pure half (model, YAML source, check, merge, signals, engine, history, replay) never
touches the kernel; `actions` and `seccomp` are the only modules that act, through the cgroup
driver and libseccomp. The daemon composes them through agent/policy/service.py.
"""
