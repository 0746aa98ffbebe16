/* `run --cgroup-procs FILE` (repeat): the launcher puts the container's init into its cgroups
 * itself, between its clone and the `pid` line, so the daemon's Python does not write them and
 * the init sets up its mounts meanwhile. On a cgroup2 directory the init is born there
 * (clone3 with CLONE_INTO_CGROUP, Linux 5.7+: no migration, so no write of cgroup.procs);
 * every other file (the v1 hierarchies) gets the init's pid written. Where clone3 or
 * CLONE_INTO_CGROUP is refused the init is cloned as before and every file is written.
 * `--cgroup-write`, or CORRAL_LAUNCH_NO_CLONE_INTO_CGROUP=1 in the environment (for tests), takes
 * that path. The daemon passes --cgroup-write when it starts a container again in the cgroup of
 * its last run: once a cgroup has been killed through cgroup.kill, the kernel here (6.18)
 * SIGKILLs every child cloned into it with CLONE_INTO_CGROUP (its fork compares the kill count
 * of the parent's cgroup with the target's), so only a cgroup never killed is cloned into. */
#ifndef CORRAL_PLACE_H
#define CORRAL_PLACE_H

#include <stddef.h>
#include <sys/types.h>

struct cgroup_place {
	const char **procs; /* the cgroup.procs files, in the order to write them */
	int n;
	int into;           /* index of the file whose directory the init is cloned into; -1: none */
	int into_fd;        /* that directory, O_PATH; -1: none */
	int write_only;     /* --cgroup-write: write every file, clone into none (a reused cgroup) */
};

/* Picks the cgroup2 directory to clone into (the first file on cgroup2) and opens it. Returns
 * 0, or -1 with the reason in msg. */
int place_prepare(struct cgroup_place *p, char *msg, size_t size);

/* clone3 into the picked cgroup (falling back to clone(2) when that is refused), with
 * `flags` (namespace flags, no signal) and SIGCHLD at exit; the child runs fn(arg) on `stack`
 * (clone) or on its copy of ours (clone3) and exits with its result. *born_in is set to the
 * index of the file the child was born in, or -1. Returns the pid, or -1 with errno set. */
pid_t place_clone(const struct cgroup_place *p, int flags, int (*fn)(void *), void *arg,
		  char *stack, size_t stack_size, int *born_in);

/* Writes pid into every file but born_in. Returns 0, or -1 with the reason in msg. */
int place_write(const struct cgroup_place *p, pid_t pid, int born_in, char *msg, size_t size);

#endif
