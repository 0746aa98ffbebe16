/* The container's init: the process `run` clones into new namespaces. Until it execs the
 * command it sets up the container (rootfs.h, cgroupns.h, identity, limits, terminal, caps.h,
 * seccomp.h) and reports the first failure on a CLOEXEC error pipe, so the shim reads an empty
 * pipe when the exec succeeded and the step that failed otherwise. Its order is in
 * launcher/README.md. */
#ifndef CORRAL_CONTAINER_H
#define CORRAL_CONTAINER_H

#include "options.h"
#include "seccomp.h"
#include "tty.h"

/* What the cloned init needs; it lives in the child's copy of the shim's memory. */
struct child_ctx {
	const struct run_opts *opts;
	const struct seccomp_prog *filter;
	int sync_r, sync_w; /* the shim writes one byte after `go` */
	int err_r, err_w;   /* CLOEXEC: closed empty when exec succeeds */
	int out_r, out_w;   /* the container's stdout */
	int log_r, log_w;   /* the container's stderr */
	int devnull;
	struct console_ends *console;
};

/* In the container's init before exec: report "MESSAGE[: strerror(err)]" on the error pipe and
 * die. */
void child_fail(const struct child_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* The container's init (pid 1 of its pid namespace) until it execs the command: clone's fn,
 * arg a struct child_ctx. Returns only by exiting. */
int container_init(void *arg);

#endif
