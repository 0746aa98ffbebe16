/* The `run` verb: the container's start, then its shim (run.h). */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "container.h"
#include "exitstatus.h"
#include "handshake.h"
#include "logfile.h"
#include "netjoin.h"
#include "options.h"
#include "place.h"
#include "report.h"
#include "seccomp.h"
#include "tty.h"
#include "userns.h"

static void log_output(void *sink, int stream, const char *data, size_t len)
{
	log_write_frame(sink, stream, data, len);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct seccomp_prog filter;
	char msg[MSG_MAX];
	if (parse_run(argc, argv, &o, msg, sizeof(msg)) < 0 ||
	    read_seccomp(o.proc.seccomp_file, &filter, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}
	setsid(); /* a Ctrl-C of the daemon must not reach containers (fails if already leader) */
	signal(SIGPIPE, SIG_IGN);

	struct log_sink log;
	if (log_open(&log, o.log) < 0) {
		error_line(1, errno, "open log \"%s\"", o.log);
		return 1;
	}
	struct child_ctx ctx = {.opts = &o, .filter = &filter};
	int p[4][2];
	for (int i = 0; i < 4; i++) {
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			error_line(1, errno, "pipe");
			return 1;
		}
	}
	ctx.sync_r = p[0][0], ctx.sync_w = p[0][1];
	ctx.err_r = p[1][0], ctx.err_w = p[1][1];
	ctx.out_r = p[2][0], ctx.out_w = p[2][1];
	ctx.log_r = p[3][0], ctx.log_w = p[3][1];
	ctx.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (ctx.devnull < 0) {
		error_line(1, errno, "open \"/dev/null\"");
		return 1;
	}
	struct console_ends console;
	ctx.console = &console;
	if (console_prepare(&o.proc.console, &console, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}

	int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	if (o.net != NET_HOST && o.net != NET_JOIN)
		flags |= CLONE_NEWNET;
	if (o.userns.size)
		flags |= CLONE_NEWUSER;
	/* The child runs on this array in its own copy of our memory. */
	static const size_t stack_size = 256 * 1024;
	char *stack = malloc(stack_size);
	if (stack == NULL) {
		error_line(1, ENOMEM, "clone");
		return 1;
	}
	if (place_prepare(&o.proc.cgroups, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}
	struct netjoin join;
	if (o.net == NET_JOIN && netjoin_enter(o.net_join, &join, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}
	int born_in;
	pid_t pid = place_clone(&o.proc.cgroups, flags, container_init, &ctx, stack, stack_size, &born_in);
	int clone_err = errno;
	if (o.net == NET_JOIN && netjoin_leave(&join, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		if (pid > 0)
			kill_and_reap(pid);
		return 1;
	}
	if (pid < 0) {
		error_line(1, clone_err, "clone");
		return 1;
	}
	close(ctx.sync_r);
	close(ctx.err_w);
	close(ctx.out_w);
	close(ctx.log_w);
	if (o.userns.size && userns_write_maps(pid, &o.userns, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		kill_and_reap(pid);
		return 1;
	}
	console_shim_side(&console);
	/* Its cgroups before the daemon learns its pid: the daemon counts it from `pid` on. */
	if (place_write(&o.proc.cgroups, pid, born_in, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		kill_and_reap(pid);
		return 1;
	}

	if (handshake_start(pid, ctx.sync_w, ctx.err_r) < 0)
		return 1;
	dup2(ctx.devnull, 0);
	dup2(ctx.devnull, 1);
	close(ctx.devnull);
	if (chdir("/") < 0)
		note(errno, "chdir \"/\"");

	struct console_pump pump = {.opts = &o.proc.console, .ends = &console, .out_r = ctx.out_r,
				    .err_r = ctx.log_r, .log_fd = log.fd, .log = log_output, .log_ctx = &log};
	int code = console_pump_until_exit(pid, &pump);
	if (o.exit_file && write_exit_file(o.exit_file, code) < 0) {
		note(errno, "write exit file \"%s\" (exit code %d)", o.exit_file, code);
		return 1;
	}
	return 0;
}
