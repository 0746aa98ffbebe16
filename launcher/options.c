/* `run` options into struct run_opts, and those `exec` shares (options.h). */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"

const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
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

/* Empty options for argc words (the arrays hold every repeat), the default capabilities. */
static int process_opts_init(struct process_opts *p, int argc, char *msg, size_t size)
{
	memset(p, 0, sizeof(*p));
	p->env = calloc((size_t)argc + 1, sizeof(char *));
	p->group_add = calloc((size_t)argc + 1, sizeof(char *));
	p->ulimits = calloc((size_t)argc + 1, sizeof(struct ulimit));
	p->cgroups.procs = calloc((size_t)argc + 1, sizeof(char *));
	p->caps = DOCKER_CAPS;
	if (p->env == NULL || p->group_add == NULL || p->ulimits == NULL || p->cgroups.procs == NULL) {
		snprintf(msg, size, "usage: out of memory");
		return -1;
	}
	return 0;
}

/* One of the options of struct process_opts: as verb_option. */
static int parse_process_option(int argc, char **argv, int *i, struct process_opts *p, int *missing, char *msg,
				size_t size)
{
	const char *v;
	if ((v = opt_value(argc, argv, i, "--env", missing))) {
		if (strchr(v, '=') == NULL || v[0] == '=') {
			snprintf(msg, size, "usage: --env \"%s\": expected KEY=VALUE", v);
			return -1;
		}
		p->env[p->nenv++] = (char *)v;
	} else if ((v = opt_value(argc, argv, i, "--workdir", missing))) {
		p->workdir = v;
	} else if ((v = opt_value(argc, argv, i, "--seccomp", missing))) {
		p->seccomp_file = absolute(v);
	} else if ((v = opt_value(argc, argv, i, "--caps", missing))) {
		if (parse_caps(v, &p->caps) < 0) {
			snprintf(msg, size, "usage: --caps \"%s\": expected a capability mask like 0xa80425fb", v);
			return -1;
		}
	} else if ((v = opt_value(argc, argv, i, "--user", missing))) {
		p->user = v;
	} else if ((v = opt_value(argc, argv, i, "--group-add", missing))) {
		p->group_add[p->ngroup_add++] = v;
	} else if ((v = opt_value(argc, argv, i, "--ulimit", missing))) {
		if (parse_ulimit(v, &p->ulimits[p->nulimits]) < 0) {
			snprintf(msg, size, "usage: --ulimit \"%s\": expected NAME=SOFT[:HARD] with SOFT <= HARD", v);
			return -1;
		}
		p->nulimits++;
	} else if ((v = opt_value(argc, argv, i, "--cgroup-procs", missing))) {
		p->cgroups.procs[p->cgroups.n++] = absolute(v);
	} else if (strcmp(argv[*i], "--tty") == 0) {
		p->console.tty = 1;
	} else if ((v = opt_value(argc, argv, i, "--tty-size", missing))) {
		if (console_parse_size(v, &p->console) < 0) {
			snprintf(msg, size, "usage: --tty-size \"%s\": expected ROWS,COLS", v);
			return -1;
		}
	} else {
		return 0;
	}
	return 1;
}

int process_command(int argc, char **argv, int i, struct process_opts *p, const char *usage, char *msg,
		    size_t size)
{
	if (i >= argc) {
		snprintf(msg, size, "usage: no command: %s", usage);
		return -1;
	}
	p->argv = argv + i;
	return 0;
}

/* The reason argv[i], no option of the verb, is refused. */
static int option_refused(const char *arg, int missing, const char *usage, char *msg, size_t size)
{
	if (missing)
		snprintf(msg, size, "usage: option \"%s\" needs a value", arg);
	else
		snprintf(msg, size, "usage: unknown option \"%s\" (%s)", arg, usage);
	return -1;
}

int parse_options(int argc, char **argv, struct process_opts *p, verb_option own, void *opts, const char *usage,
		  char *msg, size_t size)
{
	int missing = 0, rc;
	if (process_opts_init(p, argc, msg, size) < 0)
		return -1;
	int i;
	for (i = 2; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0)
			return i + 1;
		if ((rc = parse_process_option(argc, argv, &i, p, &missing, msg, size)) == 0)
			rc = own(argc, argv, &i, opts, &missing, msg, size);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return option_refused(arg, missing, usage, msg, size);
	}
	return i;
}

#define RUN_USAGE "run [options] -- CMD [ARG...]"

/* `run`'s own options (verb_option). */
static int run_option(int argc, char **argv, int *i, void *opts, int *missing, char *msg, size_t size)
{
	struct run_opts *o = opts;
	const char *arg = argv[*i];
	const char *v;
	if ((v = opt_value(argc, argv, i, "--rootfs", missing))) {
		o->rootfs = v;
	} else if ((v = opt_value(argc, argv, i, "--hostname", missing))) {
		o->hostname = v;
	} else if ((v = opt_value(argc, argv, i, "--net", missing))) {
		if (strcmp(v, "none") == 0)
			o->net = NET_NONE;
		else if (strcmp(v, "host") == 0)
			o->net = NET_HOST;
		else if (strcmp(v, "new") == 0)
			o->net = NET_NEW;
		else if (strncmp(v, "join:/", 6) == 0)
			o->net = NET_JOIN, o->net_join = v + 5;
		else {
			snprintf(msg, size, "usage: --net \"%s\": expected none, host, new or join:PATH", v);
			return -1;
		}
	} else if ((v = opt_value(argc, argv, i, "--bind", missing))) {
		if (parse_bind(v, &o->binds[o->nbinds]) < 0) {
			snprintf(msg, size, "usage: --bind \"%s\": expected /SRC:/DST[:ro|:rw] with absolute paths", v);
			return -1;
		}
		o->nbinds++;
	} else if ((v = opt_value(argc, argv, i, "--log", missing))) {
		o->log = absolute(v);
	} else if ((v = opt_value(argc, argv, i, "--exit-file", missing))) {
		o->exit_file = absolute(v);
	} else if (strcmp(arg, "--read-only") == 0) {
		o->read_only = 1;
	} else if (strcmp(arg, "--privileged") == 0) {
		o->privileged = 1;
	} else if ((v = opt_value(argc, argv, i, "--userns", missing))) {
		if (userns_parse(v, &o->userns) < 0) {
			snprintf(msg, size, "usage: --userns \"%s\": expected UID:GID:SIZE", v);
			return -1;
		}
	} else if ((v = opt_value(argc, argv, i, "--tmpfs", missing))) {
		if (parse_tmpfs(v, &o->tmpfs[o->ntmpfs]) < 0) {
			snprintf(msg, size, "usage: --tmpfs \"%s\": expected /DST:FLAGS:DATA", v);
			return -1;
		}
		o->ntmpfs++;
	} else if (strcmp(arg, "--init") == 0) {
		o->init = 1;
	} else if (strcmp(arg, "--cgroup-write") == 0) {
		o->proc.cgroups.write_only = 1;
	} else if (strcmp(arg, "--stdin") == 0) {
		o->proc.console.open_stdin = 1;
	} else if ((v = opt_value(argc, argv, i, "--attach-socket", missing))) {
		o->proc.console.socket_path = absolute(v);
	} else {
		return 0;
	}
	return 1;
}

int parse_run(int argc, char **argv, struct run_opts *o, char *msg, size_t size)
{
	memset(o, 0, sizeof(*o));
	o->net = NET_NONE;
	o->binds = calloc((size_t)argc + 1, sizeof(struct bind));
	o->tmpfs = calloc((size_t)argc + 1, sizeof(struct tmpfs_mount));
	if (o->binds == NULL || o->tmpfs == NULL) {
		snprintf(msg, size, "usage: out of memory");
		return -1;
	}
	int i = parse_options(argc, argv, &o->proc, run_option, o, RUN_USAGE, msg, size);
	if (i < 0)
		return -1;
	if (o->proc.workdir && o->proc.workdir[0] != '/') {
		snprintf(msg, size, "usage: --workdir \"%s\": must be an absolute path", o->proc.workdir);
		return -1;
	}
	if (o->rootfs == NULL) {
		snprintf(msg, size, "usage: --rootfs DIR is required");
		return -1;
	}
	o->rootfs = absolute(o->rootfs);
	return process_command(argc, argv, i, &o->proc, RUN_USAGE, msg, size);
}
