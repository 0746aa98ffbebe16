"""eBPF probes: load probes/*.c once with BCC, watch containers by cgroup id, read the counts.

interface.py is the seam the rest of Corral uses (`ProbeControl`, `ProbeReader`, `ProbeEvents`);
loader.ProbeSet implements it over BCC, double.ProbeDouble in memory for unit tests. ProbeSet
is a facade over source.py (C text and flags), compiled.py (BCC), slots.py, attachments.py,
enforcement.py, readings.py/percpu.py and ring.py; events.py decodes the ring buffer's
records (agent/syscall_table.py names the syscalls), structs.py mirrors the C structs of
probes/common.h, and cgroup_programs.py attaches and queries cgroup programs through bpf().
"""
