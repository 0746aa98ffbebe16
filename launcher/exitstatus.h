/* How the launcher learns and records the end of a process it started: waitpid that survives
 * EINTR, Docker's exit code (the status, or 128+signal), the exit file the daemon reads (even
 * after a restart of its own), and the kill of an init whose start was aborted. */
#ifndef CORRAL_EXITSTATUS_H
#define CORRAL_EXITSTATUS_H

#include <sys/types.h>

/* A pidfd for pid (readable once it has exited), or -1 where the kernel has none (< 5.3): then
 * the caller polls waitpid(WNOHANG) instead. */
int open_pidfd(pid_t pid);

/* waitpid(pid, __WALL), retried on EINTR; 0, or -1 with errno set. */
int wait_status(pid_t pid, int *status);

/* The exit code of a wait status: the exit status, or 128+signal when it was killed. */
int exit_code(int status);

/* Write "CODE\n" to path via a temporary file and rename, so readers never see half. 0, or -1
 * with errno set. */
int write_exit_file(const char *path, int code);

/* SIGKILL pid and reap it. */
void kill_and_reap(pid_t pid);

#endif
