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
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#include "canary.h"
#include "groups.h"
#include "init.h"
#include "logfile.h"
#include "place.h"
#include "rlimits.h"
#include "userns.h"
#include "tty.h"

#define VERSION "0.1.0"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Docker's default capability set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID
 * SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE = 0xa80425fb. */
#define CAP(c) (UINT64_C(1) << (c))
#define DOCKER_CAPS                                                                        \
	(CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FSETID) | CAP(CAP_FOWNER) |          \
	 CAP(CAP_MKNOD) | CAP(CAP_NET_RAW) | CAP(CAP_SETGID) | CAP(CAP_SETUID) |               \
	 CAP(CAP_SETFCAP) | CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) |                     \
	 CAP(CAP_SYS_CHROOT) | CAP(CAP_KILL) | CAP(CAP_AUDIT_WRITE))

/* Paths Docker hides from containers, and those it makes read-only. */
static const char *const MASKED_PATHS[] = {
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const READONLY_PATHS[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};
/* Device nodes bind-mounted from the host into the container's /dev tmpfs. */
static const char *const DEVICES[] = {"null", "zero", "full", "random", "urandom", "tty"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MSG_MAX 1024 /* < PIPE_BUF, so an error line is written atomically */
#define PUMP_CHUNK 65536

enum net_mode { NET_NONE, NET_HOST, NET_NEW };

struct bind {
	const char *src;
	const char *dst;
	int readonly;
};

/* --tmpfs DST:FLAGS:DATA (the daemon turned Docker's options into mount flags and data). */
struct tmpfs_mount {
	const char *dst;
	unsigned long flags;
	const char *data;
};

struct seccomp_prog {
	struct sock_filter *insns;
	unsigned short len; /* 0: no filter */
};

struct run_opts {
	const char *rootfs;
	const char *hostname;
	enum net_mode net;
	char **env; /* NULL-terminated */
	const char *workdir;
	struct bind *binds;
	int nbinds;
	const char *log;
	const char *exit_file;
	const char *seccomp_file;
	char **argv;
	/* Security options (docs/security.md). */
	uint64_t caps;      /* --caps MASK: effective, permitted, inheritable and bounding set */
	const char *user;   /* --user USER[:GROUP], resolved in the container's /etc files */
	int read_only;      /* --read-only: the root mount read-only */
	int privileged;     /* --privileged: /proc and /sys unmasked and writable, cgroups rw */
	struct tmpfs_mount *tmpfs;
	int ntmpfs;
	/* Users and environment (docs/cli.md). */
	const char **group_add; /* --group-add GROUP (repeat) */
	int ngroup_add;
	struct ulimit *ulimits; /* --ulimit NAME=SOFT:HARD (repeat) */
	int nulimits;
	int init;               /* --init: stay as pid 1, reaping (init.c) */
	struct userns_map userns; /* --userns UID:GID:SIZE (launcher/userns.h); size 0: none */
	struct console_opts console; /* --tty, --stdin, --attach-socket, --tty-size (tty.h) */
	struct cgroup_place cgroups; /* --cgroup-procs FILE (repeat; place.h) */
};

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

/* ---------------------------------------------------------------- messages */

/* Format "MESSAGE[: strerror(err)]" into buf (always terminated, newlines flattened). */
static size_t vformat(char *buf, size_t size, int err, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);
	size_t len = n < 0 ? 0 : ((size_t)n >= size ? size - 1 : (size_t)n);
	if (err) {
		n = snprintf(buf + len, size - len, ": %s", strerror(err));
		len += n < 0 ? 0 : ((size_t)n >= size - len ? size - len - 1 : (size_t)n);
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	return len;
}

static void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Write "error MESSAGE\n" on fd. */
static void verror_line(int fd, int err, const char *fmt, va_list ap)
{
	char line[MSG_MAX + 8];
	memcpy(line, "error ", 6);
	size_t len = 6 + vformat(line + 6, MSG_MAX, err, fmt, ap);
	line[len++] = '\n';
	write_all(fd, line, len);
}

static void error_line(int fd, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void error_line(int fd, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror_line(fd, err, fmt, ap);
	va_end(ap);
}

/* A diagnostic for the shim's own log (fd 2). */
static void note(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(int err, const char *fmt, ...)
{
	char line[MSG_MAX + 32];
	memcpy(line, "corral-launch: ", 15);
	va_list ap;
	va_start(ap, fmt);
	size_t len = 15 + vformat(line + 15, MSG_MAX, err, fmt, ap);
	va_end(ap);
	line[len++] = '\n';
	write_all(2, line, len);
}

/* In the container's init before exec: report on the error pipe and die. */
static void child_fail(const struct child_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
static void child_fail(const struct child_ctx *ctx, int err, const char *fmt, ...)
{
	char line[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	size_t len = vformat(line, sizeof(line), err, fmt, ap);
	va_end(ap);
	write_all(ctx->err_w, line, len);
	_exit(1);
}

/* --------------------------------------------------------------- arguments */

/* The value of option `name` at argv[*i]: "--name VALUE" or "--name=VALUE"; NULL if not it. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t len = strlen(name);
	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

/* An absolute version of path (relative to the cwd at start), since the shim chdirs to /. */
static const char *absolute(const char *path)
{
	if (path == NULL || path[0] == '/')
		return path;
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return path;
	size_t len = strlen(cwd) + strlen(path) + 2;
	char *abs = malloc(len);
	if (abs == NULL)
		return path;
	snprintf(abs, len, "%s/%s", cwd, path);
	return abs;
}

static int parse_bind(const char *text, struct bind *out)
{
	char *copy = strdup(text);
	if (copy == NULL)
		return -1;
	char *dst = strchr(copy, ':');
	if (dst == NULL)
		return -1;
	*dst++ = '\0';
	char *mode = strchr(dst, ':');
	out->readonly = 0;
	if (mode != NULL) {
		*mode++ = '\0';
		if (strcmp(mode, "ro") == 0)
			out->readonly = 1;
		else if (strcmp(mode, "rw") != 0)
			return -1;
	}
	if (copy[0] != '/' || dst[0] != '/')
		return -1;
	out->src = copy;
	out->dst = dst;
	return 0;
}

static int parse_caps(const char *text, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 0);
	if (*text == '\0' || *end != '\0' || errno != 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int parse_tmpfs(const char *text, struct tmpfs_mount *out)
{
	char *copy = strdup(text);
	if (copy == NULL || copy[0] != '/')
		return -1;
	char *flags = strchr(copy, ':');
	if (flags == NULL)
		return -1;
	*flags++ = '\0';
	char *data = strchr(flags, ':');
	if (data == NULL)
		return -1;
	*data++ = '\0';
	char *end;
	out->flags = strtoul(flags, &end, 10);
	if (*flags == '\0' || *end != '\0')
		return -1;
	out->dst = copy;
	out->data = data;
	return 0;
}

/* --group-add and --ulimit, which run and exec share: 1 when argv[*i] was one of them (msg
 * set when its value is bad), else 0. */
static int parse_identity_option(int argc, char **argv, int *i, const char **group, int *ngroups,
				 struct ulimit *limit, int *nlimits, int *missing, char *msg, size_t size)
{
	const char *v;
	msg[0] = '\0';
	if ((v = opt_value(argc, argv, i, "--group-add", missing))) {
		*group = v;
		(*ngroups)++;
		return 1;
	}
	if ((v = opt_value(argc, argv, i, "--ulimit", missing))) {
		if (parse_ulimit(v, limit) < 0)
			snprintf(msg, size, "usage: --ulimit \"%s\": expected NAME=SOFT[:HARD] with SOFT <= HARD", v);
		else
			(*nlimits)++;
		return 1;
	}
	return 0;
}

/* Parse `run` options; on a bad one, write the reason into msg and return -1. */
static int parse_run(int argc, char **argv, struct run_opts *o, char *msg, size_t size)
{
	int nenv = 0, missing = 0;
	memset(o, 0, sizeof(*o));
	o->net = NET_NONE;
	o->env = calloc((size_t)argc + 1, sizeof(char *));
	o->binds = calloc((size_t)argc + 1, sizeof(struct bind));
	o->tmpfs = calloc((size_t)argc + 1, sizeof(struct tmpfs_mount));
	o->group_add = calloc((size_t)argc + 1, sizeof(char *));
	o->ulimits = calloc((size_t)argc + 1, sizeof(struct ulimit));
	o->cgroups.procs = calloc((size_t)argc + 1, sizeof(char *));
	o->caps = DOCKER_CAPS;
	if (o->env == NULL || o->binds == NULL || o->tmpfs == NULL || o->group_add == NULL || o->ulimits == NULL ||
	    o->cgroups.procs == NULL) {
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
		} else if ((v = opt_value(argc, argv, &i, "--rootfs", &missing))) {
			o->rootfs = v;
		} else if ((v = opt_value(argc, argv, &i, "--hostname", &missing))) {
			o->hostname = v;
		} else if ((v = opt_value(argc, argv, &i, "--net", &missing))) {
			if (strcmp(v, "none") == 0)
				o->net = NET_NONE;
			else if (strcmp(v, "host") == 0)
				o->net = NET_HOST;
			else if (strcmp(v, "new") == 0)
				o->net = NET_NEW;
			else {
				snprintf(msg, size, "usage: --net \"%s\": expected none, host or new", v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--env", &missing))) {
			if (strchr(v, '=') == NULL || v[0] == '=') {
				snprintf(msg, size, "usage: --env \"%s\": expected KEY=VALUE", v);
				return -1;
			}
			o->env[nenv++] = (char *)v;
		} else if ((v = opt_value(argc, argv, &i, "--workdir", &missing))) {
			if (v[0] != '/') {
				snprintf(msg, size, "usage: --workdir \"%s\": must be an absolute path", v);
				return -1;
			}
			o->workdir = v;
		} else if ((v = opt_value(argc, argv, &i, "--bind", &missing))) {
			if (parse_bind(v, &o->binds[o->nbinds]) < 0) {
				snprintf(msg, size,
					 "usage: --bind \"%s\": expected /SRC:/DST[:ro|:rw] with absolute paths", v);
				return -1;
			}
			o->nbinds++;
		} else if ((v = opt_value(argc, argv, &i, "--log", &missing))) {
			o->log = absolute(v);
		} else if ((v = opt_value(argc, argv, &i, "--exit-file", &missing))) {
			o->exit_file = absolute(v);
		} else if ((v = opt_value(argc, argv, &i, "--seccomp", &missing))) {
			o->seccomp_file = absolute(v);
		} else if ((v = opt_value(argc, argv, &i, "--caps", &missing))) {
			if (parse_caps(v, &o->caps) < 0) {
				snprintf(msg, size, "usage: --caps \"%s\": expected a capability mask like 0xa80425fb", v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--user", &missing))) {
			o->user = v;
		} else if (strcmp(arg, "--read-only") == 0) {
			o->read_only = 1;
		} else if (strcmp(arg, "--privileged") == 0) {
			o->privileged = 1;
		} else if ((v = opt_value(argc, argv, &i, "--userns", &missing))) {
			if (userns_parse(v, &o->userns) < 0) {
				snprintf(msg, size, "usage: --userns \"%s\": expected UID:GID:SIZE", v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--tmpfs", &missing))) {
			if (parse_tmpfs(v, &o->tmpfs[o->ntmpfs]) < 0) {
				snprintf(msg, size, "usage: --tmpfs \"%s\": expected /DST:FLAGS:DATA", v);
				return -1;
			}
			o->ntmpfs++;
		} else if (strcmp(arg, "--init") == 0) {
			o->init = 1;
		} else if ((v = opt_value(argc, argv, &i, "--cgroup-procs", &missing))) {
			o->cgroups.procs[o->cgroups.n++] = absolute(v);
		} else if (strcmp(arg, "--cgroup-write") == 0) {
			o->cgroups.write_only = 1;
		} else if (parse_identity_option(argc, argv, &i, &o->group_add[o->ngroup_add], &o->ngroup_add,
						 &o->ulimits[o->nulimits], &o->nulimits, &missing, msg, size)) {
			if (msg[0])
				return -1;
		} else if (strcmp(arg, "--tty") == 0) {
			o->console.tty = 1;
		} else if (strcmp(arg, "--stdin") == 0) {
			o->console.open_stdin = 1;
		} else if ((v = opt_value(argc, argv, &i, "--attach-socket", &missing))) {
			o->console.socket_path = absolute(v);
		} else if ((v = opt_value(argc, argv, &i, "--tty-size", &missing))) {
			if (console_parse_size(v, &o->console) < 0) {
				snprintf(msg, size, "usage: --tty-size \"%s\": expected ROWS,COLS", v);
				return -1;
			}
		} else {
			if (missing)
				snprintf(msg, size, "usage: option \"%s\" needs a value", arg);
			else
				snprintf(msg, size, "usage: unknown option \"%s\" (run [options] -- CMD [ARG...])", arg);
			return -1;
		}
	}
	if (o->rootfs == NULL) {
		snprintf(msg, size, "usage: --rootfs DIR is required");
		return -1;
	}
	o->rootfs = absolute(o->rootfs);
	if (i >= argc) {
		snprintf(msg, size, "usage: no command: run [options] -- CMD [ARG...]");
		return -1;
	}
	o->argv = argv + i;
	return 0;
}

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

/* ----------------------------------------------------------- process set-up */

/* The daemon (Python) ignores SIGPIPE and may block signals; a container starts clean. */
static void reset_signals(void)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP and glibc's own */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

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

/* Read the raw `struct sock_filter[]` file; returns 0 or an errno-style failure in msg. */
static int read_seccomp(const char *path, struct seccomp_prog *prog, char *msg, size_t size)
{
	prog->insns = NULL;
	prog->len = 0;
	if (path == NULL)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(msg, size, "read seccomp \"%s\": %s", path, strerror(errno));
		return -1;
	}
	size_t want = (size_t)st.st_size;
	if (want == 0 || want % sizeof(struct sock_filter) != 0 ||
	    want / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(msg, size,
			 "read seccomp \"%s\": size %zu is not a BPF program (a non-empty multiple of %zu bytes, at most %d instructions)",
			 path, want, sizeof(struct sock_filter), BPF_MAXINSNS);
		close(fd);
		return -1;
	}
	char *buf = malloc(want);
	size_t got = 0;
	while (buf != NULL && got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int err = errno;
	close(fd);
	if (buf == NULL || got != want) {
		snprintf(msg, size, "read seccomp \"%s\": %s", path,
			 buf == NULL ? "out of memory" : (got < want ? "file shrank while reading" : strerror(err)));
		return -1;
	}
	prog->insns = (struct sock_filter *)buf;
	prog->len = (unsigned short)(want / sizeof(struct sock_filter));
	return 0;
}

/* ------------------------------------------------------------ identity */

#define MAX_GROUPS 64

/* A --user resolved in the container's /etc/passwd and /etc/group. */
struct identity {
	int set;
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int ngroups;
	char home[256];
};

static int all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Split a colon-separated line in place into at most n fields (empty fields kept). */
static int split_fields(char *line, char **fields, int n)
{
	int count = 0;
	line[strcspn(line, "\n")] = '\0';
	while (count < n) {
		fields[count++] = line;
		char *colon = strchr(line, ':');
		if (colon == NULL)
			break;
		*colon = '\0';
		line = colon + 1;
	}
	return count;
}

/* One of the container's /etc files; only a regular file (a FIFO must not block us). */
static FILE *open_etc(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	return fdopen(fd, "r");
}

/* USER[:GROUP] (names or numbers) as Docker resolves it: a name must be in /etc/passwd, the
 * primary group is the passwd entry's unless GROUP is given, and the supplementary groups are
 * those of /etc/group that list the user. Returns 0, or -1 with the reason in msg. */
static int resolve_user(const char *spec, struct identity *id, char *msg, size_t size)
{
	char user[256], group[256] = "", name[256] = "", *line = NULL, *f[7];
	size_t cap = 0;
	memset(id, 0, sizeof(*id));
	if (snprintf(user, sizeof(user), "%s", spec) >= (int)sizeof(user)) {
		snprintf(msg, size, "user \"%s\": too long", spec);
		return -1;
	}
	char *colon = strchr(user, ':');
	if (colon) {
		*colon = '\0';
		snprintf(group, sizeof(group), "%s", colon + 1);
	}
	int numeric = all_digits(user), found = 0;
	unsigned long uid = numeric ? strtoul(user, NULL, 10) : 0;
	FILE *file = open_etc("/etc/passwd");
	while (file && getline(&line, &cap, file) > 0) {
		if (split_fields(line, f, 7) < 4)
			continue;
		if (numeric ? (all_digits(f[2]) && strtoul(f[2], NULL, 10) == uid) : strcmp(f[0], user) == 0) {
			uid = strtoul(f[2], NULL, 10);
			id->gid = (gid_t)strtoul(f[3], NULL, 10);
			snprintf(name, sizeof(name), "%s", f[0]);
			if (f[5] && f[5][0])
				snprintf(id->home, sizeof(id->home), "%s", f[5]);
			found = 1;
			break;
		}
	}
	if (file)
		fclose(file);
	if (!numeric && !found) {
		free(line);
		snprintf(msg, size, "unable to find user %s: no matching entries in passwd file", user);
		return -1;
	}
	if (uid > 0xfffffffeUL) {
		free(line);
		snprintf(msg, size, "user \"%s\": uid out of range", user);
		return -1;
	}
	id->uid = (uid_t)uid;
	int group_found = group[0] == '\0' || all_digits(group);
	if (all_digits(group))
		id->gid = (gid_t)strtoul(group, NULL, 10);
	id->groups[id->ngroups++] = id->gid;
	file = open_etc("/etc/group");
	while (file && getline(&line, &cap, file) > 0) {
		if (split_fields(line, f, 4) < 3)
			continue;
		gid_t gid = (gid_t)strtoul(f[2], NULL, 10);
		if (!group_found && strcmp(f[0], group) == 0) {
			id->gid = id->groups[0] = gid;
			group_found = 1;
		}
		/* Membership: the fourth field lists user names separated by commas. */
		for (char *m = f[3] && name[0] ? f[3] : NULL, *next; m && *m && id->ngroups < MAX_GROUPS; m = next) {
			next = strchr(m, ',');
			if (next)
				*next++ = '\0';
			if (strcmp(m, name) == 0 && gid != id->groups[0])
				id->groups[id->ngroups++] = gid;
		}
	}
	if (file)
		fclose(file);
	free(line);
	if (!group_found) {
		snprintf(msg, size, "unable to find group %s: no matching entries in group file", group);
		return -1;
	}
	id->set = 1;
	return 0;
}

/* HOME from the passwd entry when the environment has none (Docker sets it too). */
static void default_home(char **env, const struct identity *id)
{
	size_t n = 0;
	for (; env[n]; n++)
		if (strncmp(env[n], "HOME=", 5) == 0)
			return;
	char *home = malloc(strlen(id->home[0] ? id->home : "/") + 6);
	if (home == NULL)
		return;
	sprintf(home, "HOME=%s", id->home[0] ? id->home : "/");
	env[n] = home; /* env has room: it was allocated for every argument */
}

/* --user and --group-add: the identity to switch to (root's entry when only groups are
 * added, as under Docker); id->set stays 0 when neither is given. */
static int resolve_identity(const char *user, const char **group_add, int ngroup_add, struct identity *id,
			    char *msg, size_t size)
{
	if (user == NULL && ngroup_add == 0)
		return 0;
	if (resolve_user(user ? user : "0", id, msg, size) < 0)
		return -1;
	return add_groups(group_add, ngroup_add, id->groups, &id->ngroups, MAX_GROUPS, msg, size);
}

/* Bounding set, the user, effective/permitted/inheritable, ambient, no_new_privs. The user is
 * switched while every capability is still held (PR_SET_KEEPCAPS), so dropping SETUID or
 * SETGID does not stop it; for a non-root user exec then clears the effective set, as under
 * Docker. Returns the failed step's name, or NULL. */
static const char *drop_capabilities(uint64_t caps, const struct identity *id, int *err)
{
	/* Never more than we hold: --privileged (every capability) under a daemon that lacks one
	 * gets all the daemon has, as under Docker. */
	struct __user_cap_header_struct held_hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct held[2];
	if (syscall(SYS_capget, &held_hdr, held) == 0)
		caps &= (uint64_t)held[0].permitted | ((uint64_t)held[1].permitted << 32);
	for (int cap = 0; cap < 64; cap++) {
		if (caps & CAP(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL) /* past the kernel's last capability */
				break;
			*err = errno;
			return "drop capability from the bounding set";
		}
	}
	if (id && id->set) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups((size_t)id->ngroups, id->groups) < 0 ||
		    setresgid(id->gid, id->gid, id->gid) < 0 || setresuid(id->uid, id->uid, id->uid) < 0 ||
		    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) {
			*err = errno;
			return "switch to the user";
		}
	}
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	for (int i = 0; i < 2; i++) {
		uint32_t word = (uint32_t)(caps >> (32 * i));
		data[i].effective = data[i].permitted = data[i].inheritable = word;
	}
	if (syscall(SYS_capset, &hdr, data) < 0) {
		*err = errno;
		return "capset";
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		*err = errno;
		return "clear ambient capabilities";
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*err = errno;
		return "set no_new_privs";
	}
	return NULL;
}

static int install_seccomp(const struct seccomp_prog *filter)
{
	if (filter->len == 0)
		return 0;
	struct sock_fprog prog = {.len = filter->len, .filter = filter->insns};
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static const char *env_get(char **env, const char *key)
{
	size_t len = strlen(key);
	for (; *env; env++)
		if (strncmp(*env, key, len) == 0 && (*env)[len] == '=')
			return *env + len + 1;
	return NULL;
}

/* execve argv[0], searched in the container's PATH like execvp; returns the errno. */
static int exec_command(char **argv, char **env)
{
	const char *cmd = argv[0];
	if (cmd[0] == '\0')
		return ENOENT;
	if (strchr(cmd, '/')) {
		execve(cmd, argv, env);
		return errno;
	}
	const char *path = env_get(env, "PATH");
	if (path == NULL)
		path = DEFAULT_PATH;
	int denied = 0;
	char full[PATH_MAX];
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int dirlen = (int)(end - p);
		int n = dirlen == 0 ? snprintf(full, sizeof(full), "%s", cmd)
				    : snprintf(full, sizeof(full), "%.*s/%s", dirlen, p, cmd);
		if (n > 0 && (size_t)n < sizeof(full)) {
			execve(full, argv, env);
			switch (errno) {
			case EACCES:
				denied = 1;
				break;
			case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: case ENAMETOOLONG:
				break;
			default:
				return errno;
			}
		}
		if (*end == '\0')
			break;
		p = end;
	}
	return denied ? EACCES : ENOENT;
}

/* ------------------------------------------------------- mounts in the rootfs */

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* An O_PATH fd for rel resolved inside rootfd as if it were "/" (symlinks in the image cannot
 * point out of it). Falls back to plain openat on kernels without openat2. */
static int open_in_root(int rootfd, const char *rel, int flags)
{
	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(O_PATH | O_CLOEXEC | flags);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = openat(rootfd, rel, O_PATH | O_CLOEXEC | flags);
	return fd;
}

/* Like open_in_root, creating what is missing: directories, and the last component as an
 * empty file when as_file. */
static int ensure_in_root(int rootfd, const char *rel, int as_file)
{
	int fd = open_in_root(rootfd, rel, as_file ? 0 : O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof(parent), "%s", rel) >= (int)sizeof(parent)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	char *slash = strrchr(parent, '/');
	const char *name = slash ? slash + 1 : parent;
	if (slash)
		*slash = '\0';
	int pfd = ensure_in_root(rootfd, slash ? parent : "/", 0);
	if (pfd < 0)
		return -1;
	int rc;
	if (as_file) {
		rc = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (rc >= 0)
			close(rc);
	} else {
		rc = mkdirat(pfd, name, 0755);
	}
	int err = errno;
	close(pfd);
	if (rc < 0 && err != EEXIST) {
		errno = err;
		return -1;
	}
	return open_in_root(rootfd, rel, as_file ? 0 : O_DIRECTORY);
}

static const char *fd_path(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return buf;
}

/* Mount flags of the mount at path, to keep them when remounting read-only. */
static unsigned long kept_flags(const char *path)
{
	struct statvfs st;
	unsigned long flags = 0;
	if (statvfs(path, &st) < 0)
		return 0;
	if (st.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (st.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (st.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (st.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (st.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (st.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

/* Remount the mount now on top of rel (resolved in the root) read-only. */
static int remount_ro_in_root(int rootfd, const char *rel)
{
	char buf[64];
	int fd = open_in_root(rootfd, rel, 0);
	if (fd < 0)
		return -1;
	const char *path = fd_path(fd, buf, sizeof(buf));
	int rc = mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(path), NULL);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* Mount (src, fstype, flags, data) on rel inside the root, creating the mount point. */
static int mount_in_root(int rootfd, const char *rel, int as_file, const char *src,
			 const char *fstype, unsigned long flags, const char *data)
{
	char buf[64];
	int fd = ensure_in_root(rootfd, rel, as_file);
	if (fd < 0)
		return -1;
	int rc = mount(src, fd_path(fd, buf, sizeof(buf)), fstype, flags, data);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* Mount on name inside dirfd (a fresh tmpfs we made: no symlinks to fear). */
static int mount_at(int dirfd, const char *name, const char *src, const char *fstype,
		    unsigned long flags, const char *data)
{
	char buf[64];
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = mount(src, fd_path(fd, buf, sizeof(buf)), fstype, flags, data);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

static void setup_dev(const struct child_ctx *ctx, int rootfd)
{
	if (mount_in_root(rootfd, "/dev", 0, "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME,
			  "mode=755,size=65536k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/dev\"");
	int devfd = open_in_root(rootfd, "/dev", O_DIRECTORY);
	if (devfd < 0)
		child_fail(ctx, errno, "open \"/dev\"");
	for (size_t i = 0; i < COUNT(DEVICES); i++) {
		char host[32];
		snprintf(host, sizeof(host), "/dev/%s", DEVICES[i]);
		int fd = openat(devfd, DEVICES[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 || close(fd) < 0 || mount_at(devfd, DEVICES[i], host, NULL, MS_BIND, NULL) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\"", host, host);
	}
	if (mkdirat(devfd, "pts", 0755) < 0 ||
	    mount_at(devfd, "pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
		child_fail(ctx, errno, "mount devpts on \"/dev/pts\"");
	if (mkdirat(devfd, "shm", 01777) < 0 ||
	    mount_at(devfd, "shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/dev/shm\"");
	static const char *const links[][2] = {
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	};
	for (size_t i = 0; i < COUNT(links); i++)
		if (symlinkat(links[i][0], devfd, links[i][1]) < 0)
			child_fail(ctx, errno, "symlink \"/dev/%s\"", links[i][1]);
	close(devfd);
}

static void setup_sys(const struct child_ctx *ctx, int rootfd)
{
	unsigned long flags = (ctx->opts->privileged ? 0 : MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount_in_root(rootfd, "/sys", 0, "sysfs", "sysfs", flags, NULL) == 0)
		return;
	int err = errno;
	/* sysfs shows the mounter's netns; sharing the host's may refuse a new instance. Not
	 * recursive: the host's cgroup, bpf and tracing mounts under /sys stay out. */
	if (ctx->opts->net != NET_HOST)
		child_fail(ctx, err, "mount sysfs on \"/sys\"");
	if (mount_in_root(rootfd, "/sys", 0, "/sys", NULL, MS_BIND, NULL) < 0)
		child_fail(ctx, errno, "bind \"/sys\" on \"/sys\" (after mount sysfs: %s)", strerror(err));
	if (!ctx->opts->privileged && remount_ro_in_root(rootfd, "/sys") < 0)
		child_fail(ctx, errno, "remount \"/sys\" read-only");
}

/* Remount the mount on name inside dirfd read-only (keeping its other flags). */
static int remount_ro_at(int dirfd, const char *name)
{
	char buf[64];
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	const char *path = fd_path(fd, buf, sizeof(buf));
	int rc = mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(path), NULL);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* The container's own cgroups at /sys/fs/cgroup, as Docker shows them: each hierarchy the
 * init belongs to (table: /proc/self/cgroup read before the cgroup namespace was made),
 * mounted in the container's cgroup namespace so it sees only its own subtree, and read-only
 * (unless --privileged), so its limits are changed only by the daemon. Hybrid hosts get a
 * tmpfs with one directory per v1 hierarchy plus "unified"; pure v2 hosts the cgroup2 root. */
static void setup_cgroups(const struct child_ctx *ctx, int rootfd, char *table)
{
	const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	const int ro = !ctx->opts->privileged;
	const char *newline = strchr(table, '\n');
	if (strncmp(table, "0::", 3) == 0 && (newline == NULL || newline[1] == '\0')) { /* only v2 */
		if (mount_in_root(rootfd, "/sys/fs/cgroup", 0, "cgroup2", "cgroup2", flags, NULL) < 0)
			child_fail(ctx, errno, "mount cgroup2 on \"/sys/fs/cgroup\"");
		if (ro && remount_ro_in_root(rootfd, "/sys/fs/cgroup") < 0)
			child_fail(ctx, errno, "remount \"/sys/fs/cgroup\" read-only");
		return;
	}
	if (mount_in_root(rootfd, "/sys/fs/cgroup", 0, "tmpfs", "tmpfs", flags, "mode=755,size=64k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/sys/fs/cgroup\"");
	int dirfd = open_in_root(rootfd, "/sys/fs/cgroup", O_DIRECTORY);
	if (dirfd < 0)
		child_fail(ctx, errno, "open \"/sys/fs/cgroup\"");
	char *save = NULL;
	for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* "ID:CONTROLLERS:PATH"; v2 has no controllers. */
		char *controllers = strchr(line, ':'), *path;
		if (controllers == NULL || (path = strchr(++controllers, ':')) == NULL)
			continue;
		*path++ = '\0';
		int v2 = controllers[0] == '\0';
		const char *name = v2 ? "unified" : (strncmp(controllers, "name=", 5) == 0 ? controllers + 5 : controllers);
		if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
			child_fail(ctx, errno, "create \"/sys/fs/cgroup/%s\"", name);
		int rc = mount_at(dirfd, name, "cgroup", v2 ? "cgroup2" : "cgroup", flags, v2 ? NULL : controllers);
		if (rc < 0 && errno == EPERM) {
			/* Not allowed to mount a hierarchy here (a user namespace): bind our subtree. */
			char host[PATH_MAX];
			snprintf(host, sizeof(host), "/sys/fs/cgroup/%s%s", name, path);
			rc = mount_at(dirfd, name, host, NULL, MS_BIND, NULL);
		}
		if (rc < 0)
			child_fail(ctx, errno, "mount cgroup \"%s\" on \"/sys/fs/cgroup/%s\"", controllers, name);
		if (ro && remount_ro_at(dirfd, name) < 0)
			child_fail(ctx, errno, "remount \"/sys/fs/cgroup/%s\" read-only", name);
		/* Co-mounted controllers ("cpu,cpuacct") get a link per controller, as on the host. */
		if (!v2 && strchr(name, ',')) {
			char list[256], *part_save = NULL;
			snprintf(list, sizeof(list), "%s", name);
			for (char *part = strtok_r(list, ",", &part_save); part; part = strtok_r(NULL, ",", &part_save))
				if (symlinkat(name, dirfd, part) < 0 && errno != EEXIST)
					child_fail(ctx, errno, "symlink \"/sys/fs/cgroup/%s\"", part);
		}
	}
	close(dirfd);
	if (ro && remount_ro_in_root(rootfd, "/sys/fs/cgroup") < 0)
		child_fail(ctx, errno, "remount \"/sys/fs/cgroup\" read-only");
}

/* --tmpfs mounts, then --read-only: the root itself read-only, its mounts as they are. */
static void setup_writable(const struct child_ctx *ctx, int rootfd)
{
	const struct run_opts *o = ctx->opts;
	for (int i = 0; i < o->ntmpfs; i++)
		if (mount_in_root(rootfd, o->tmpfs[i].dst, 0, "tmpfs", "tmpfs", o->tmpfs[i].flags, o->tmpfs[i].data) < 0)
			child_fail(ctx, errno, "mount tmpfs on \"%s\"", o->tmpfs[i].dst);
	if (!o->read_only)
		return;
	if (o->workdir) { /* made now: it cannot be made once the root is read-only */
		int fd = ensure_in_root(rootfd, o->workdir, 0);
		if (fd < 0)
			child_fail(ctx, errno, "create workdir \"%s\"", o->workdir);
		close(fd);
	}
	if (remount_ro_in_root(rootfd, "/") < 0)
		child_fail(ctx, errno, "remount the root read-only");
}

static void setup_binds(const struct child_ctx *ctx, int rootfd)
{
	const struct run_opts *o = ctx->opts;
	for (int i = 0; i < o->nbinds; i++) {
		const struct bind *b = &o->binds[i];
		struct stat st;
		if (stat(b->src, &st) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\": source", b->src, b->dst);
		if (mount_in_root(rootfd, b->dst, !S_ISDIR(st.st_mode), b->src, NULL, MS_BIND | MS_REC, NULL) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\"", b->src, b->dst);
		if (b->readonly && remount_ro_in_root(rootfd, b->dst) < 0)
			child_fail(ctx, errno, "remount bind \"%s\" read-only", b->dst);
	}
}

/* After pivot_root: hide and freeze what Docker hides and freezes in /proc and /sys. */
static void mask_paths(const struct child_ctx *ctx)
{
	for (size_t i = 0; i < COUNT(MASKED_PATHS); i++) {
		const char *path = MASKED_PATHS[i];
		struct stat st;
		if (stat(path, &st) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(ctx, errno, "mask \"%s\"", path);
		}
		int rc = S_ISDIR(st.st_mode)
				 ? mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
				 : mount("/dev/null", path, NULL, MS_BIND, NULL);
		if (rc < 0)
			child_fail(ctx, errno, "mask \"%s\"", path);
	}
	for (size_t i = 0; i < COUNT(READONLY_PATHS); i++) {
		const char *path = READONLY_PATHS[i];
		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(ctx, errno, "bind \"%s\" read-only", path);
		}
		if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  NULL) < 0)
			child_fail(ctx, errno, "remount \"%s\" read-only", path);
	}
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

static void loopback_up(const struct child_ctx *ctx)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		child_fail(ctx, errno, "bring \"lo\" up: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		child_fail(ctx, errno, "bring \"lo\" up: get flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		child_fail(ctx, errno, "bring \"lo\" up");
	close(s);
}

/* ------------------------------------------------------------ the container */

/* The root's mounts that need neither the cgroups nor the cgroup namespace: "/" rslave, lo
 * up, the rootfs bound on itself, /proc, /dev, /sys. Returns the rootfs, O_PATH. */
static int prepare_root(const struct child_ctx *ctx)
{
	const struct run_opts *o = ctx->opts;
	/* Nothing mounted from here on may propagate to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		child_fail(ctx, errno, "make \"/\" rslave");
	if (o->net != NET_HOST)
		loopback_up(ctx);

	/* pivot_root needs a mount point; the bind also keeps host submounts of it. */
	if (mount(o->rootfs, o->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(ctx, errno, "bind rootfs \"%s\"", o->rootfs);
	int rootfd = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		child_fail(ctx, errno, "open rootfs \"%s\"", o->rootfs);
	if (mount_in_root(rootfd, "/proc", 0, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(ctx, errno, "mount proc on \"/proc\"");
	setup_dev(ctx, rootfd);
	setup_sys(ctx, rootfd);
	return rootfd;
}

/* The container's init (pid 1 of its pid namespace) until it execs the command. */
static int container_init(void *arg)
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

	/* Our cgroups as the host names them, before the namespace makes them all "/". */
	static char cgroup_table[8192];
	int table_fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	ssize_t table_len = table_fd < 0 ? -1 : read(table_fd, cgroup_table, sizeof(cgroup_table) - 1);
	if (table_len <= 0)
		child_fail(ctx, errno, "read \"/proc/self/cgroup\"");
	cgroup_table[table_len] = '\0';
	close(table_fd);
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(ctx, errno, "unshare cgroup namespace");
	setup_cgroups(ctx, rootfd, cgroup_table);
	setup_binds(ctx, rootfd);
	setup_writable(ctx, rootfd);

	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the new. */
	if (fchdir(rootfd) < 0)
		child_fail(ctx, errno, "chdir rootfs \"%s\"", o->rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(ctx, errno, "pivot_root \"%s\"", o->rootfs);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(ctx, errno, "detach the old root");
	if (chdir("/") < 0)
		child_fail(ctx, errno, "chdir \"/\"");
	close(rootfd);

	if (!o->privileged)
		mask_paths(ctx);
	struct identity id = {0};
	char msg[MSG_MAX];
	if (resolve_identity(o->user, o->group_add, o->ngroup_add, &id, msg, sizeof(msg)) < 0)
		child_fail(ctx, 0, "%s", msg);
	if (id.set)
		default_home(o->env, &id);
	if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
		child_fail(ctx, errno, "sethostname \"%s\"", o->hostname);
	if (o->workdir) {
		if (mkdir_p(o->workdir) < 0)
			child_fail(ctx, errno, "create workdir \"%s\"", o->workdir);
		if (chdir(o->workdir) < 0)
			child_fail(ctx, errno, "chdir \"%s\"", o->workdir);
	}
	const char *limit = NULL;
	if (apply_ulimits(o->ulimits, o->nulimits, &limit) < 0)
		child_fail(ctx, errno, "set ulimit %s", limit);
	const char *console_step = console_take(&o->console, ctx->console, id.set ? (int)id.uid : -1);
	if (console_step)
		child_fail(ctx, errno, "%s", console_step);
	int err = 0;
	const char *step = drop_capabilities(o->caps, &id, &err);
	if (step)
		child_fail(ctx, err, "%s", step);
	if (install_seccomp(ctx->filter) < 0)
		child_fail(ctx, errno, "install seccomp filter \"%s\"", o->seccomp_file);
	if (o->init && become_init(ctx->err_w) < 0)
		child_fail(ctx, errno, "fork the command under --init");
	err = exec_command(o->argv, o->env);
	child_fail(ctx, err, "exec \"%s\"", o->argv[0]);
}

/* ---------------------------------------------------------------- the shim */

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

static int wait_status(pid_t pid, int *status)
{
	pid_t r;
	while ((r = waitpid(pid, status, __WALL)) < 0 && errno == EINTR)
		;
	return r == pid ? 0 : -1;
}

static int exit_code(int status)
{
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

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

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Pump the init's stdout/stderr into the log until it has exited and the pipes are drained. */
static int pump_until_exit(pid_t pid, int out_r, int err_r, struct log_sink *log)
{
	char *buf = malloc(PUMP_CHUNK);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
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

/* Write "CODE\n" to path via a temporary file and rename, so readers never see half. */
static int write_exit_file(const char *path, int code)
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

static void log_output(void *sink, int stream, const char *data, size_t len)
{
	log_write_frame(sink, stream, data, len);
}

static void kill_and_reap(pid_t pid)
{
	int status;
	kill(pid, SIGKILL);
	wait_status(pid, &status);
}

static int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct seccomp_prog filter;
	char msg[MSG_MAX];
	if (parse_run(argc, argv, &o, msg, sizeof(msg)) < 0 ||
	    read_seccomp(o.seccomp_file, &filter, msg, sizeof(msg)) < 0) {
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
	if (console_prepare(&o.console, &console, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}

	int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	if (o.net != NET_HOST)
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
	if (place_prepare(&o.cgroups, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		return 1;
	}
	int born_in;
	pid_t pid = place_clone(&o.cgroups, flags, container_init, &ctx, stack, stack_size, &born_in);
	if (pid < 0) {
		error_line(1, errno, "clone");
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
	if (place_write(&o.cgroups, pid, born_in, msg, sizeof(msg)) < 0) {
		error_line(1, 0, "%s", msg);
		kill_and_reap(pid);
		return 1;
	}

	char line[64];
	int len = snprintf(line, sizeof(line), "pid %d\n", pid);
	if (write(1, line, (size_t)len) != len) {
		note(errno, "write pid to the daemon");
		kill_and_reap(pid);
		return 1;
	}
	read_line(0, line, sizeof(line));
	if (strcmp(line, "go") != 0) {
		note(0, "%s: killing the container's init %d", line[0] ? line : "control pipe closed", pid);
		kill_and_reap(pid);
		return 1;
	}
	/* A failed write: the init died setting up its root; its own message says why. */
	int go_err = write(ctx.sync_w, "g", 1) == 1 ? 0 : errno;
	close(ctx.sync_w);

	/* Empty EOF: the init exec'd (the write end is CLOEXEC). Anything else: its error. */
	size_t got = 0;
	for (;;) {
		ssize_t n = read(ctx.err_r, msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) >= sizeof(msg) - 1)
			break;
	}
	close(ctx.err_r);
	if (got > 0) {
		msg[got] = '\0';
		kill_and_reap(pid);
		error_line(1, 0, "%s", msg);
		return 1;
	}
	if (go_err) {
		kill_and_reap(pid);
		error_line(1, go_err, "start the container's init");
		return 1;
	}
	write_all(1, "started\n", 8);
	dup2(ctx.devnull, 0);
	dup2(ctx.devnull, 1);
	close(ctx.devnull);
	if (chdir("/") < 0)
		note(errno, "chdir \"/\"");

	int code;
	if (o.console.tty || o.console.open_stdin || o.console.socket_path) {
		struct console_pump pump = {.opts = &o.console, .ends = &console, .out_r = ctx.out_r,
					    .err_r = ctx.log_r, .log_fd = log.fd, .log = log_output, .log_ctx = &log};
		code = console_pump_until_exit(pid, &pump);
	} else {
		code = pump_until_exit(pid, ctx.out_r, ctx.log_r, &log);
	}
	if (o.exit_file && write_exit_file(o.exit_file, code) < 0) {
		note(errno, "write exit file \"%s\" (exit code %d)", o.exit_file, code);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- exec */

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

static int cmd_exec(int argc, char **argv)
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
