/*
 * corral-launch: the launcher and shim of Corral containers (see docs/ARCHITECTURE.md,
 * "The launcher").
 *
 *   corral-launch run [options] -- CMD [ARG...]
 *       clones the container's init into new namespaces, then stays as its shim: pumps its
 *       stdout/stderr into the log file as Docker stream frames and records its exit code.
 *   corral-launch exec --pid PID [options] -- CMD [ARG...]
 *       runs a command inside the namespaces of a running container.
 *   corral-launch --version
 *
 * The daemon is a big Python process; forking it is slow, so it spawns this small program
 * instead. Only glibc and Linux UAPI headers: no libseccomp, no libcap. Every failure is one
 * line naming the step and the value at fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "canary.h"
#include "exec.h"
#include "init.h"
#include "report.h"
#include "run.h"

#define VERSION "0.1.0"

/* Make sure fds 0-2 exist, so fds we open later never land on them. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int null = open("/dev/null", O_RDWR);
			if (null >= 0 && null != fd) {
				dup2(null, fd);
				close(null);
			}
		}
	}
}

/* Close every fd the caller leaked to us beyond 0-2 (the shim outlives the daemon). */
static void close_inherited_fds(void)
{
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

int main(int argc, char **argv)
{
	ensure_std_fds();
	close_inherited_fds();
	init_keep_argv(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("corral-launch %s\n", VERSION);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "exec") == 0)
		return cmd_exec(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "canary") == 0)
		return cmd_canary(argc, argv);
	error_line(2, 0, "usage: corral-launch run [options] -- CMD [ARG...] | exec --pid PID [options] -- CMD [ARG...] | canary ... | --version");
	return 2;
}
