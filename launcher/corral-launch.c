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
#include <stdio.h>
#include <string.h>

#include "canary.h"
#include "exec.h"
#include "fds.h"
#include "init.h"
#include "report.h"
#include "run.h"

#define VERSION "0.1.0"

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
