/* `corral-launch run` options (docs/ARCHITECTURE.md, "The launcher", has the table) into one
 * struct run_opts, and the option helpers `exec` shares. Parsing only checks the shape of each
 * value; what a value means in the container (a user name, a bind source) is checked where it
 * is used, so the error names the step. Paths are made absolute here because the shim later
 * chdirs to "/". */
#ifndef CORRAL_OPTIONS_H
#define CORRAL_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "place.h"
#include "rlimits.h"
#include "tty.h"
#include "userns.h"

enum net_mode { NET_NONE, NET_HOST, NET_NEW, NET_JOIN };

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


struct run_opts {
	const char *rootfs;
	const char *hostname;
	enum net_mode net;
	const char *net_join; /* --net join:PATH: the namespace to be born in (netjoin.h) */
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

/* The value of option `name` at argv[*i]: "--name VALUE" or "--name=VALUE"; NULL if not it
 * (*missing set when it is, but has no value). */
const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing);

/* --group-add and --ulimit, which run and exec share: 1 when argv[*i] was one of them (msg
 * set when its value is bad), else 0. */
int parse_identity_option(int argc, char **argv, int *i, const char **group, int *ngroups,
			  struct ulimit *limit, int *nlimits, int *missing, char *msg, size_t size);

/* Parse `run` options (argv[2] on); on a bad one, write the reason into msg and return -1. */
int parse_run(int argc, char **argv, struct run_opts *o, char *msg, size_t size);

#endif
