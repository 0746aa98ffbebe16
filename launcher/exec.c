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
	char **env;
	const char *workdir;
	const char **cgroup_procs;
	int ncgroup_procs;
	const char *seccomp_file;
	char **argv;
	uint64_t caps;
	const char *user;
	const char **group_add;
	int ngroup_add;
	struct ulimit *ulimits;
	int nulimits;
	int tty;                     /* --tty: a terminal of the container's devpts, sent on fd 1 */
	unsigned short rows, cols;   /* --tty-size */
};

static int parse_exec(int argc, char **argv, struct exec_opts *o, char *msg, size_t size)
{
	int nenv = 0, missing = 0;
	memset(o, 0, sizeof(*o));
	o->env = calloc((size_t)argc + 1, sizeof(char *));
	o->cgroup_procs = calloc((size_t)argc + 1, sizeof(char *));
	o->group_add = calloc((size_t)argc + 1, sizeof(char *));
	o->ulimits = calloc((size_t)argc + 1, sizeof(struct ulimit));
	o->caps = DOCKER_CAPS;
	if (o->env == NULL || o->cgroup_procs == NULL || o->group_add == NULL || o->ulimits == NULL) {
		snprintf(msg, size, "usage: out of memory");
		return -1;
	}
	int i;
	for (i = 2; i < argc; i++) {
		const char *v;
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		} else if ((v = opt_value(argc, argv, &i, "--pid", &missing))) {
			char *end;
			long pid = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || pid <= 0 || pid > INT_MAX) {
				snprintf(msg, size, "usage: --pid \"%s\": expected a process id", v);
				return -1;
			}
			o->pid = (pid_t)pid;
		} else if ((v = opt_value(argc, argv, &i, "--env", &missing))) {
			if (strchr(v, '=') == NULL || v[0] == '=') {
				snprintf(msg, size, "usage: --env \"%s\": expected KEY=VALUE", v);
				return -1;
			}
			o->env[nenv++] = (char *)v;
		} else if ((v = opt_value(argc, argv, &i, "--workdir", &missing))) {
			o->workdir = v;
		} else if ((v = opt_value(argc, argv, &i, "--cgroup-procs", &missing))) {
			o->cgroup_procs[o->ncgroup_procs++] = v;
		} else if ((v = opt_value(argc, argv, &i, "--seccomp", &missing))) {
			o->seccomp_file = v;
		} else if ((v = opt_value(argc, argv, &i, "--caps", &missing))) {
			if (parse_caps(v, &o->caps) < 0) {
				snprintf(msg, size, "usage: --caps \"%s\": expected a capability mask like 0xa80425fb", v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--user", &missing))) {
			o->user = v;
		} else if (parse_identity_option(argc, argv, &i, &o->group_add[o->ngroup_add], &o->ngroup_add,
						 &o->ulimits[o->nulimits], &o->nulimits, &missing, msg, size)) {
			if (msg[0])
				return -1;
		} else if (strcmp(arg, "--tty") == 0) {
			o->tty = 1;
		} else if ((v = opt_value(argc, argv, &i, "--tty-size", &missing))) {
			struct console_opts size_of = {0};
			if (console_parse_size(v, &size_of) < 0) {
				snprintf(msg, size, "usage: --tty-size \"%s\": expected ROWS,COLS", v);
				return -1;
			}
			o->rows = size_of.rows;
			o->cols = size_of.cols;
		} else {
			if (missing)
				snprintf(msg, size, "usage: option \"%s\" needs a value", arg);
			else
				snprintf(msg, size, "usage: unknown option \"%s\" (exec --pid PID [options] -- CMD [ARG...])", arg);
			return -1;
		}
	}
	if (o->pid == 0) {
		snprintf(msg, size, "usage: --pid PID is required");
		return -1;
	}
	if (i >= argc) {
		snprintf(msg, size, "usage: no command: exec --pid PID [options] -- CMD [ARG...]");
		return -1;
	}
	o->argv = argv + i;
	return 0;
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
	    read_seccomp(o.seccomp_file, &filter, msg, sizeof(msg)) < 0) {
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
	int *cgfd = calloc((size_t)o.ncgroup_procs + 1, sizeof(int));
	for (int i = 0; cgfd && i < o.ncgroup_procs; i++) {
		cgfd[i] = open(o.cgroup_procs[i], O_WRONLY | O_CLOEXEC);
		if (cgfd[i] < 0) {
			error_line(2, errno, "open cgroup \"%s\"", o.cgroup_procs[i]);
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
	const char *console_step = o.tty ? console_open(&master, &slave) : NULL;
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
		for (int i = 0; i < o.ncgroup_procs; i++) {
			if (write(cgfd[i], "0", 1) != 1) {
				error_line(2, errno, "join cgroup \"%s\"", o.cgroup_procs[i]);
				_exit(125);
			}
			close(cgfd[i]);
		}
		if (o.workdir && chdir(o.workdir) < 0) {
			error_line(2, errno, "chdir \"%s\"", o.workdir);
			_exit(126);
		}
		struct identity id = {0};
		char reason[MSG_MAX];
		if (resolve_identity(o.user, o.group_add, o.ngroup_add, &id, reason, sizeof(reason)) < 0) {
			error_line(2, 0, "%s", reason);
			_exit(126);
		}
		const char *limit = NULL;
		if (apply_ulimits(o.ulimits, o.nulimits, &limit) < 0) {
			error_line(2, errno, "set ulimit %s", limit);
			_exit(126);
		}
		if (id.set)
			default_home(o.env, &id);
		if (master >= 0 && (setsid() < 0 || (console_step = console_become(slave, id.set ? (int)id.uid : -1,
										    o.rows, o.cols)))) {
			error_line(2, errno, "%s", console_step ? console_step : "setsid");
			_exit(126);
		}
		int err = 0;
		const char *step = drop_capabilities(o.caps, &id, &err);
		if (step) {
			error_line(2, err, "%s", step);
			_exit(126);
		}
		if (install_seccomp(&filter) < 0) {
			error_line(2, errno, "install seccomp filter \"%s\"", o.seccomp_file);
			_exit(126);
		}
		err = exec_command(o.argv, o.env);
		error_line(2, err, "exec \"%s\"", o.argv[0]);
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
