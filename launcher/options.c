/* `run` options into struct run_opts (options.h). */
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

int parse_identity_option(int argc, char **argv, int *i, const char **group, int *ngroups,
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

int parse_run(int argc, char **argv, struct run_opts *o, char *msg, size_t size)
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
			else if (strncmp(v, "join:/", 6) == 0)
				o->net = NET_JOIN, o->net_join = v + 5;
			else {
				snprintf(msg, size, "usage: --net \"%s\": expected none, host, new or join:PATH", v);
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
