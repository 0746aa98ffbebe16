/* `corral-launch run` options (docs/ARCHITECTURE.md, "The launcher", has the table) into one
 * struct run_opts, and the options of the process to start that `run` and `exec` share
 * (struct process_opts, parse_process_option). Parsing only checks the shape of each
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


/* What `run` and `exec` both say about the process they start. */
struct process_opts {
	char **env;                  /* --env KEY=VALUE (repeat); NULL-terminated */
	int nenv;
	const char *workdir;         /* --workdir DIR (`run`: absolute) */
	const char *seccomp_file;    /* --seccomp FILE (absolute) */
	/* Security options (docs/security.md). */
	uint64_t caps;               /* --caps MASK: effective, permitted, inheritable and bounding set */
	const char *user;            /* --user USER[:GROUP], resolved in the container's /etc files */
	/* Users and environment (docs/cli.md). */
	const char **group_add;      /* --group-add GROUP (repeat) */
	int ngroup_add;
	struct ulimit *ulimits;      /* --ulimit NAME=SOFT:HARD (repeat) */
	int nulimits;
	struct console_opts console; /* --tty, --tty-size; `run` also --stdin, --attach-socket (tty.h) */
	struct cgroup_place cgroups; /* --cgroup-procs FILE (repeat, absolute; place.h) */
	char **argv;                 /* the command, after "--" */
};

struct run_opts {
	const char *rootfs;
	const char *hostname;
	enum net_mode net;
	const char *net_join; /* --net join:PATH: the namespace to be born in (netjoin.h) */
	struct bind *binds;
	int nbinds;
	const char *log;
	const char *exit_file;
	int read_only;      /* --read-only: the root mount read-only */
	int privileged;     /* --privileged: /proc and /sys unmasked and writable, cgroups rw */
	struct tmpfs_mount *tmpfs;
	int ntmpfs;
	int init;               /* --init: stay as pid 1, reaping (init.c) */
	struct userns_map userns; /* --userns UID:GID:SIZE (launcher/userns.h); size 0: none */
	struct process_opts proc; /* env, workdir, identity, limits, terminal, cgroups, command */
};

/* The value of option `name` at argv[*i]: "--name VALUE" or "--name=VALUE"; NULL if not it
 * (*missing set when it is, but has no value). */
const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing);

/* A verb's own option at argv[*i] into opts: 1 when it was one, -1 when its value is bad (the
 * reason in msg), 0 when argv[*i] is not one of them (*missing set when it is, without a
 * value). */
typedef int (*verb_option)(int argc, char **argv, int *i, void *opts, int *missing, char *msg, size_t size);

/* A verb's options from argv[2] up to "--": those of struct process_opts into p (made empty
 * first, with the default capabilities), the verb's own through own(opts); the first one that
 * is neither is refused. Returns the index of the command's first word, or -1 with the reason
 * in msg. */
int parse_options(int argc, char **argv, struct process_opts *p, verb_option own, void *opts, const char *usage,
		  char *msg, size_t size);

/* argv[i] on is the command (p->argv): 0; or there is none: -1 and "usage: no command:
 * USAGE" in msg. */
int process_command(int argc, char **argv, int i, struct process_opts *p, const char *usage, char *msg,
		    size_t size);

/* Parse `run` options (argv[2] on); on a bad one, write the reason into msg and return -1. */
int parse_run(int argc, char **argv, struct run_opts *o, char *msg, size_t size);

#endif
