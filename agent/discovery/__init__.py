"""Observe mode: finding and following the containers Corral did not start.

`classify` recognises containers of containerd/Kubernetes, docker, podman and systemd units
from their cgroup paths and reads their names from the runtimes' state on the host (pure
functions, injectable roots). `watcher` notices cgroups appearing and vanishing (inotify with a
rescan fallback). `observed` is the registry the daemon keeps of them and hands to the probes,
the metrics collector and the API; `foreign_cgroups` lets policy actions act on their cgroups
without ever creating or removing one.
"""
