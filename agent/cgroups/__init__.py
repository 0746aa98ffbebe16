"""Cgroups behind one driver interface: `CgroupDriver`, with a pure cgroup v2 implementation and a
hybrid one (v1 controllers for limits, a v2 directory in the unified tree for the cgroup id,
freeze, kill, PSI and BPF attachment). `detect_driver()` picks the one the host has.
"""
