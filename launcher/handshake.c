/* The pid / go / started lines between the shim and the daemon (handshake.h). */
#define _GNU_SOURCE
#include "handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exitstatus.h"
#include "report.h"

static int read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return (int)len;
}

int handshake_start(pid_t pid, int sync_w, int err_r)
{
	char msg[MSG_MAX];
	char line[64];
	int len = snprintf(line, sizeof(line), "pid %d\n", pid);
	if (write(1, line, (size_t)len) != len) {
		note(errno, "write pid to the daemon");
		kill_and_reap(pid);
		return -1;
	}
	read_line(0, line, sizeof(line));
	if (strcmp(line, "go") != 0) {
		note(0, "%s: killing the container's init %d", line[0] ? line : "control pipe closed", pid);
		kill_and_reap(pid);
		return -1;
	}
	/* A failed write: the init died setting up its root; its own message says why. */
	int go_err = write(sync_w, "g", 1) == 1 ? 0 : errno;
	close(sync_w);

	/* Empty EOF: the init exec'd (the write end is CLOEXEC). Anything else: its error. */
	size_t got = 0;
	for (;;) {
		ssize_t n = read(err_r, msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) >= sizeof(msg) - 1)
			break;
	}
	close(err_r);
	if (got > 0) {
		msg[got] = '\0';
		kill_and_reap(pid);
		error_line(1, 0, "%s", msg);
		return -1;
	}
	if (go_err) {
		kill_and_reap(pid);
		error_line(1, go_err, "start the container's init");
		return -1;
	}
	write_all(1, "started\n", 8);
	return 0;
}
