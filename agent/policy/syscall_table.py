"""Moved to agent/syscall_table.py (one table for the probes and the policies). Kept while
agent/policy/service.py and library.py, being rewritten, still import from here."""
from agent.syscall_table import SyscallTable, known_syscall, load_syscall_table

__all__ = ["SyscallTable", "known_syscall", "load_syscall_table"]
