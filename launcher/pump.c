/* The shim's plain output loop (pump.h). */
#define _GNU_SOURCE
#include "pump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitstatus.h"
#include "report.h"

#define PUMP_CHUNK 65536

/* Read what is in the pipe once; returns 0 on EOF or error (the pipe is done), 1 otherwise. */
static int pump_once(int fd, int stream, struct log_sink *log, char *buf)
{
	ssize_t n;
	while ((n = read(fd, buf, PUMP_CHUNK)) < 0 && errno == EINTR)
		;
	if (n > 0) {
		log_write_frame(log, stream, buf, (size_t)n);
		return 1;
	}
	if (n < 0 && errno == EAGAIN)
		return 1;
	return 0;
}

int pump_until_exit(pid_t pid, int out_r, int err_r, struct log_sink *log)
{
	char *buf = malloc(PUMP_CHUNK);
	int pidfd = open_pidfd(pid);
	int status = 0, exited = 0;
	int fds[2] = {out_r, err_r};
	fcntl(out_r, F_SETFL, O_NONBLOCK);
	fcntl(err_r, F_SETFL, O_NONBLOCK);
	if (buf == NULL) {
		note(ENOMEM, "log buffer");
		exit(1);
	}
	while (!exited) {
		struct pollfd p[3];
		int n = 0, idx[2] = {-1, -1};
		for (int i = 0; i < 2; i++) {
			if (fds[i] >= 0) {
				idx[i] = n;
				p[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
			}
		}
		int pidx = -1;
		if (pidfd >= 0) {
			pidx = n;
			p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		}
		/* Without a pidfd (old kernel) look at the child now and then. */
		int rc = poll(p, (nfds_t)n, pidfd >= 0 ? -1 : 100);
		if (rc < 0 && errno != EINTR) {
			note(errno, "poll");
			break;
		}
		for (int i = 0; rc > 0 && i < 2; i++) {
			if (idx[i] >= 0 && (p[idx[i]].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !pump_once(fds[i], i + 1, log, buf)) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
		if (pidx >= 0 ? (rc > 0 && (p[pidx].revents & POLLIN)) : waitpid(pid, &status, WNOHANG) == pid) {
			if (pidx >= 0 && wait_status(pid, &status) < 0)
				note(errno, "wait for the container's init %d", pid);
			exited = 1;
		}
	}
	/* The pid namespace is gone with its init, so what is left in the pipes is all there is;
	 * a writer outside it (an fd passed out) must not keep us here. */
	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		for (;;) {
			ssize_t n;
			while ((n = read(fds[i], buf, PUMP_CHUNK)) < 0 && errno == EINTR)
				;
			if (n <= 0)
				break;
			log_write_frame(log, i + 1, buf, (size_t)n);
		}
		close(fds[i]);
	}
	free(buf);
	if (pidfd >= 0)
		close(pidfd);
	return exit_code(status);
}
