"""eBPF probes: load probes/*.c once with BCC, watch containers by cgroup id, read the counts.

`loader.ProbeSet` (with `loader.ensure_mounts`) is the whole interface the metrics collector
and the daemon use. events.py decodes the OOM and exec events, syscall_names.py is the host's
syscall table, structs.py mirrors the C structs of probes/common.h, and cgroup_programs.py
attaches, detaches and queries cgroup_skb programs through the bpf() syscall.
"""
