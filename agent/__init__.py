"""Corral: a container runtime and host agent that watches and polices containers from the kernel.

Packages, in the order data flows through them:
  cli       the `corral` command, a thin client of the daemon's REST API
  api       the REST API served by the daemon on a UNIX socket, and its client
  daemon    the composition root that builds and starts every part
  runtime   containers: state, launch through the C launcher, stop, exec, logs
  images    the content-addressed image store and the embedded busybox image
  cgroups   one driver interface over cgroup v2 and hybrid (v1 limits + v2 unified) hosts
  probes    loading the BPF programs in probes/ and reading their maps
  metrics   the Prometheus collector that reads maps and cgroup files at scrape time
"""
__version__ = "0.1.0"
