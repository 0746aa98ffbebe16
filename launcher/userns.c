/*
 * User namespaces: parsing --userns, writing the maps of a cloned init, becoming its root.
 * Why the shim (not the daemon) writes the maps: it is already host
 * root and the init's parent, two small writes in C cost microseconds and no round trip,
 * the maps are in place before the daemon hears `pid` (so nothing the daemon does between
 * `pid` and `go` sees an unmapped init), and the launcher works the same without the daemon.
 */
#define _GNU_SOURCE
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int userns_parse(const char *text, struct userns_map *out)
{
	char *end;
	unsigned long value[3];
	const char *p = text;
	for (int i = 0; i < 3; i++) {
		errno = 0;
		if (*p < '0' || *p > '9')
			return -1;
		value[i] = strtoul(p, &end, 10);
		if (errno || *end != (i < 2 ? ':' : '\0'))
			return -1;
		p = end + 1;
	}
	/* uid_map takes 32-bit ids; (uid_t)-1 is reserved. */
	if (value[2] == 0 || value[0] + value[2] > 0xffffffffUL || value[1] + value[2] > 0xffffffffUL)
		return -1;
	out->uid = value[0], out->gid = value[1], out->size = value[2];
	return 0;
}

static int write_map(pid_t pid, const char *file, unsigned long host, unsigned long size, char *msg,
		     size_t msg_size)
{
	char path[64], line[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	int len = snprintf(line, sizeof(line), "0 %lu %lu\n", host, size);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, line, (size_t)len) != len) {
		int err = errno;
		snprintf(msg, msg_size, "write \"%s\" (0 %lu %lu): %s", path, host, size, strerror(err));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int userns_write_maps(pid_t pid, const struct userns_map *map, char *msg, size_t size)
{
	if (write_map(pid, "uid_map", map->uid, map->size, msg, size) < 0)
		return -1;
	return write_map(pid, "gid_map", map->gid, map->size, msg, size);
}

int userns_become_root(void)
{
	if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
		return -1;
	return 0;
}
