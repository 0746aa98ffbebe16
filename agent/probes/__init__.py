"""eBPF probes: compile probes/*.c with BCC (in a child, cached), load them, watch containers by cgroup id, read the counts.

interface.py is the seam the rest of Corral uses (`ProbeControl`, `ProbeReader`, `ProbeEvents`);
loader.ProbeSet implements it over bpf(), double.ProbeDouble in memory for unit tests. ProbeSet
is a facade over source.py (C text and flags), cache.py/build.py (the compile, in a child), compiled.py (loading through bpf_syscall.py, maps.py, ringbuf.py, tracing.py), slots.py, attachments.py,
enforcement.py, readings.py/percpu.py and ring.py; events.py decodes the ring buffer's
records (agent/syscall_table.py names the syscalls), structs.py mirrors the C structs of
probes/common.h, and cgroup_programs.py attaches and queries cgroup programs through bpf().
"""
