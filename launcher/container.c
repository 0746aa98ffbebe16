/* The container's init until exec (container.h). */
#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "cgroupns.h"
#include "command.h"
#include "identity.h"
#include "init.h"
#include "report.h"
#include "rootfs.h"
#include "userns.h"

void child_fail(const struct child_ctx *ctx, int err, const char *fmt, ...)
{
	char line[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	size_t len = vformat(line, sizeof(line), err, fmt, ap);
	va_end(ap);
	write_all(ctx->err_w, line, len);
	_exit(1);
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = c;
			if (c == '\0')
				return 0;
		}
	}
}

int container_init(void *arg)
{
	const struct child_ctx *ctx = arg;
	const struct run_opts *o = ctx->opts;

	/* Keep only the child's ends, so the shim's closing tells us it is gone. */
	close(ctx->sync_w);
	close(ctx->err_r);
	close(ctx->out_r);
	close(ctx->log_r);
	console_init_side(ctx->console);
	reset_signals();
	setsid(); /* its own session and process group, like a container under Docker */
	if (dup2(ctx->devnull, 0) < 0 || dup2(ctx->out_w, 1) < 0 || dup2(ctx->log_w, 2) < 0)
		child_fail(ctx, errno, "set up stdin/stdout/stderr");

	/* What does not depend on the cgroups is set up while the daemon (or the shim) places
	 * us in them; in a user namespace we are root only once the shim wrote its maps and
	 * said go, so there everything waits. */
	int rootfd = -1;
	if (!o->userns.size)
		rootfd = prepare_root(ctx);
	char go;
	ssize_t n;
	while ((n = read(ctx->sync_r, &go, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(1); /* aborted: the shim closed the pipe */
	if (o->userns.size) {
		if (userns_become_root() < 0)
			child_fail(ctx, errno, "become root of the user namespace");
		rootfd = prepare_root(ctx);
	}

	enter_cgroup_namespace(ctx, rootfd);
	setup_binds(ctx, rootfd);
	setup_writable(ctx, rootfd);
	enter_root(ctx, rootfd);

	if (!o->privileged)
		mask_paths(ctx);
	struct identity id = {0};
	char msg[MSG_MAX];
	if (resolve_identity(o->proc.user, o->proc.group_add, o->proc.ngroup_add, &id, msg, sizeof(msg)) < 0)
		child_fail(ctx, 0, "%s", msg);
	if (id.set)
		default_home(o->proc.env, &id);
	if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
		child_fail(ctx, errno, "sethostname \"%s\"", o->hostname);
	if (o->proc.workdir) {
		if (mkdir_p(o->proc.workdir) < 0)
			child_fail(ctx, errno, "create workdir \"%s\"", o->proc.workdir);
		if (chdir(o->proc.workdir) < 0)
			child_fail(ctx, errno, "chdir \"%s\"", o->proc.workdir);
	}
	const char *limit = NULL;
	if (apply_ulimits(o->proc.ulimits, o->proc.nulimits, &limit) < 0)
		child_fail(ctx, errno, "set ulimit %s", limit);
	const char *console_step = console_take(&o->proc.console, ctx->console, id.set ? (int)id.uid : -1);
	if (console_step)
		child_fail(ctx, errno, "%s", console_step);
	int err = 0;
	const char *step = drop_capabilities(o->proc.caps, &id, &err);
	if (step)
		child_fail(ctx, err, "%s", step);
	if (install_seccomp(ctx->filter) < 0)
		child_fail(ctx, errno, "install seccomp filter \"%s\"", o->proc.seccomp_file);
	if (o->init && become_init(ctx->err_w) < 0)
		child_fail(ctx, errno, "fork the command under --init");
	err = exec_command(o->proc.argv, o->proc.env);
	child_fail(ctx, err, "exec \"%s\"", o->proc.argv[0]);
}
