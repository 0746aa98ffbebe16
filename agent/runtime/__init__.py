"""Containers: their spec and state, launch through the C launcher (launcher/corral-launch.c),
stop, kill, exec, logs and removal, and reconciliation of on-disk state with what runs."""
