"""Moved to agent/syscall_table.py (one table for the probes and the policies). Kept while
agent/daemon.py, being rewritten, still imports `syscall_name` from here."""
from agent.syscall_table import OTHER, SyscallTable, load_syscall_table, parse_unistd, syscall_name

__all__ = ["OTHER", "SyscallTable", "load_syscall_table", "parse_unistd", "syscall_name"]
