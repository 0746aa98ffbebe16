/* The `exec` verb (exec.h). */
#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "command.h"
#include "exitstatus.h"
#include "identity.h"
#include "options.h"
#include "report.h"
#include "rlimits.h"
#include "seccomp.h"
#include "tty.h"
#include "userns.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct exec_opts {
	pid_t pid;
	struct process_opts proc; /* --tty: a terminal of the container's devpts, sent on fd 1 */
};

#define EXEC_USAGE "exec --pid PID [options] -- CMD [ARG...]"

/* `exec`'s own option, --pid (verb_option). */
static int exec_option(int argc, char **argv, int *i, void *opts, int *missing, char *msg, size_t size)
{
	struct exec_opts *o = opts;
	const char *v = opt_value(argc, argv, i, "--pid", missing);
	if (v == NULL)
		return 0;
	char *end;
	long pid = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || pid <= 0 || pid > INT_MAX) {
		snprintf(msg, size, "usage: --pid \"%s\": expected a process id", v);
		return -1;
	}
	o->pid = (pid_t)pid;
	return 1;
}

static int parse_exec(int argc, char **argv, struct exec_opts *o, char *msg, size_t size)
{
	o->pid = 0;
	int i = parse_options(argc, argv, &o->proc, exec_option, o, EXEC_USAGE, msg, size);
	if (i < 0)
		return -1;
	if (o->pid == 0) {
		snprintf(msg, size, "usage: --pid PID is required");
		return -1;
	}
	return process_command(argc, argv, i, &o->proc, EXEC_USAGE, msg, size);
}

/* The one global: a signal handler has no other way to reach the child's pid. */
static pid_t exec_child_pid;

/* Forward signals sent by a process (kill), not those a terminal sends to the whole
 * foreground group: the command got those already. */
static void forward_signal(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	if (exec_child_pid > 0 && info->si_code <= 0)
		kill(exec_child_pid, sig);
}

/* user first: the others belong to it, and joining it gives the capabilities to join them. */
static const char *const EXEC_NAMESPACES[] = {"user", "cgroup", "ipc", "uts", "net", "pid", "mnt"};

int cmd_exec(int argc, char **argv)
{
	struct exec_opts o;
	struct seccomp_prog filter;
	char msg[MSG_MAX];
	if (parse_exec(argc, argv, &o, msg, sizeof(msg)) < 0 ||
	    read_seccomp(o.proc.seccomp_file, &filter, msg, sizeof(msg)) < 0) {
		error_line(2, 0, "%s", msg);
		return 125;
	}
	/* Open everything before the first setns: after setns(mnt) host paths are gone. */
	int nsfd[COUNT(EXEC_NAMESPACES)];
	for (size_t i = 0; i < COUNT(EXEC_NAMESPACES); i++) {
		char path[64], self[64];
		struct stat theirs, ours;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", o.pid, EXEC_NAMESPACES[i]);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", EXEC_NAMESPACES[i]);
		nsfd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd[i] < 0) {
			error_line(2, errno, "open namespace \"%s\"", path);
			return 125;
		}
		/* Already there (--net host): nothing to join. */
		if (fstat(nsfd[i], &theirs) == 0 && stat(self, &ours) == 0 && theirs.st_ino == ours.st_ino &&
		    theirs.st_dev == ours.st_dev) {
			close(nsfd[i]);
			nsfd[i] = -1;
		}
	}
	int *cgfd = calloc((size_t)o.proc.cgroups.n + 1, sizeof(int));
	for (int i = 0; cgfd && i < o.proc.cgroups.n; i++) {
		cgfd[i] = open(o.proc.cgroups.procs[i], O_WRONLY | O_CLOEXEC);
		if (cgfd[i] < 0) {
			error_line(2, errno, "open cgroup \"%s\"", o.proc.cgroups.procs[i]);
			return 125;
		}
	}
	/* mnt last: it changes our root; pid applies to the child we fork next. */
	const int joins_user = nsfd[0] >= 0;
	for (size_t i = 0; i < COUNT(EXEC_NAMESPACES); i++) {
		if (nsfd[i] >= 0 && setns(nsfd[i], 0) < 0) {
			error_line(2, errno, "join %s namespace of pid %d", EXEC_NAMESPACES[i], o.pid);
			return 125;
		}
		if (nsfd[i] >= 0)
			close(nsfd[i]);
	}
	if (joins_user && userns_become_root() < 0) {
		error_line(2, errno, "become root of the user namespace of pid %d", o.pid);
		return 125;
	}

	int master = -1, slave = -1;
	const char *console_step = o.proc.console.tty ? console_open(&master, &slave) : NULL;
	if (console_step) {
		error_line(2, errno, "%s", console_step);
		return 125;
	}

	/* Installed before fork so no signal can kill us between fork and wait; the child
	 * resets them. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
	for (size_t i = 0; i < COUNT(forwarded); i++)
		sigaction(forwarded[i], &sa, NULL);

	pid_t pid = fork();
	if (pid < 0) {
		error_line(2, errno, "fork into the namespaces of pid %d", o.pid);
		return 125;
	}
	if (pid == 0) {
		reset_signals();
		for (int i = 0; i < o.proc.cgroups.n; i++) {
			if (write(cgfd[i], "0", 1) != 1) {
				error_line(2, errno, "join cgroup \"%s\"", o.proc.cgroups.procs[i]);
				_exit(125);
			}
			close(cgfd[i]);
		}
		if (o.proc.workdir && chdir(o.proc.workdir) < 0) {
			error_line(2, errno, "chdir \"%s\"", o.proc.workdir);
			_exit(126);
		}
		struct identity id = {0};
		char reason[MSG_MAX];
		if (resolve_identity(o.proc.user, o.proc.group_add, o.proc.ngroup_add, &id, reason, sizeof(reason)) < 0) {
			error_line(2, 0, "%s", reason);
			_exit(126);
		}
		const char *limit = NULL;
		if (apply_ulimits(o.proc.ulimits, o.proc.nulimits, &limit) < 0) {
			error_line(2, errno, "set ulimit %s", limit);
			_exit(126);
		}
		if (id.set)
			default_home(o.proc.env, &id);
		if (master >= 0 && (setsid() < 0 || (console_step = console_become(slave, id.set ? (int)id.uid : -1,
										    o.proc.console.rows, o.proc.console.cols)))) {
			error_line(2, errno, "%s", console_step ? console_step : "setsid");
			_exit(126);
		}
		int err = 0;
		const char *step = drop_capabilities(o.proc.caps, &id, &err);
		if (step) {
			error_line(2, err, "%s", step);
			_exit(126);
		}
		if (install_seccomp(&filter) < 0) {
			error_line(2, errno, "install seccomp filter \"%s\"", o.proc.seccomp_file);
			_exit(126);
		}
		err = exec_command(o.proc.argv, o.proc.env);
		error_line(2, err, "exec \"%s\"", o.proc.argv[0]);
		_exit(err == ENOENT ? 127 : 126);
	}
	exec_child_pid = pid;
	/* The daemon holds the terminal from here (it gave a UNIX socket as fd 1). */
	if (master >= 0 && console_send_fd(1, master) < 0) {
		error_line(2, errno, "send the terminal on fd 1");
		kill(pid, SIGKILL);
	}
	if (master >= 0) {
		close(master);
		close(slave);
	}
	int status;
	if (wait_status(pid, &status) < 0) {
		error_line(2, errno, "wait for pid %d", pid);
		return 125;
	}
	return exit_code(status);
}
