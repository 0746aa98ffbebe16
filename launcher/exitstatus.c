/* The end of a process: waited for, coded, recorded (exitstatus.h). */
#define _GNU_SOURCE
#include "exitstatus.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int open_pidfd(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int wait_status(pid_t pid, int *status)
{
	pid_t r;
	while ((r = waitpid(pid, status, __WALL)) < 0 && errno == EINTR)
		;
	return r == pid ? 0 : -1;
}

int exit_code(int status)
{
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int write_exit_file(const char *path, int code)
{
	char tmp[PATH_MAX], text[16];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int len = snprintf(text, sizeof(text), "%d\n", code);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, (size_t)len);
	int err = errno;
	if (close(fd) < 0 || n != len) {
		unlink(tmp);
		errno = n != len ? (n < 0 ? err : EIO) : errno;
		return -1;
	}
	if (rename(tmp, path) < 0) {
		err = errno;
		unlink(tmp);
		errno = err;
		return -1;
	}
	return 0;
}

void kill_and_reap(pid_t pid)
{
	int status;
	kill(pid, SIGKILL);
	wait_status(pid, &status);
}
