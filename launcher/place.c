/* The container's init into its cgroups (place.h). */
#define _GNU_SOURCE
#include "place.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#define INTO_CGROUP 0x200000000ULL /* CLONE_INTO_CGROUP, linux/sched.h (5.7) */

/* struct clone_args of linux/sched.h, version 2 (CLONE_ARGS_SIZE_VER2, 88 bytes). */
struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

int place_prepare(struct cgroup_place *p, char *msg, size_t size)
{
	p->into = -1;
	p->into_fd = -1;
	const char *off = getenv("CORRAL_LAUNCH_NO_CLONE_INTO_CGROUP");
	if (p->write_only || (off && strcmp(off, "1") == 0))
		return 0;
	for (int i = 0; i < p->n; i++) {
		char dir[4096];
		const char *slash = strrchr(p->procs[i], '/');
		if (slash == NULL || slash == p->procs[i] || strcmp(slash, "/cgroup.procs") != 0)
			continue; /* not DIR/cgroup.procs: written, never cloned into */
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - p->procs[i]), p->procs[i]);
		struct statfs fs;
		if (statfs(dir, &fs) < 0) { /* refused before anything is cloned */
			snprintf(msg, size, "join cgroup \"%s\": %s", p->procs[i], strerror(errno));
			return -1;
		}
		if (fs.f_type != CGROUP2_SUPER_MAGIC)
			continue;
		p->into_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (p->into_fd < 0) {
			snprintf(msg, size, "open cgroup \"%s\": %s", dir, strerror(errno));
			return -1;
		}
		p->into = i;
		return 0;
	}
	return 0;
}

pid_t place_clone(const struct cgroup_place *p, int flags, int (*fn)(void *), void *arg,
		  char *stack, size_t stack_size, int *born_in)
{
	*born_in = -1;
	if (p->into_fd >= 0) {
		struct clone_args_v2 args;
		memset(&args, 0, sizeof(args));
		args.flags = (uint64_t)(unsigned)flags | INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = (uint64_t)p->into_fd;
		long pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0)
			_exit(fn(arg));
		if (pid > 0) {
			*born_in = p->into;
			return (pid_t)pid;
		}
		/* ENOSYS (no clone3), E2BIG/EINVAL (no CLONE_INTO_CGROUP), EBADF (not cgroup2),
		 * EOPNOTSUPP...: clone as before and write the file like the others. */
	}
	return clone(fn, stack + stack_size, flags | SIGCHLD, arg);
}

int place_write(const struct cgroup_place *p, pid_t pid, int born_in, char *msg, size_t size)
{
	char text[16];
	int len = snprintf(text, sizeof(text), "%d", (int)pid);
	for (int i = 0; i < p->n; i++) {
		if (i == born_in)
			continue;
		int fd = open(p->procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, text, (size_t)len) != len) {
			int err = errno;
			if (fd >= 0)
				close(fd);
			snprintf(msg, size, "join cgroup \"%s\": %s", p->procs[i], strerror(err));
			return -1;
		}
		close(fd);
	}
	return 0;
}
