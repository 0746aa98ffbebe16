/*
 * User namespaces for `corral-launch run --userns UID:GID:SIZE` (docs/security.md, "User
 * namespaces"): the container's ids 0..SIZE-1 are host uids UID.. and gids GID...
 */
#ifndef CORRAL_USERNS_H
#define CORRAL_USERNS_H

#include <stddef.h>
#include <sys/types.h>

struct userns_map {
	unsigned long uid, gid, size; /* size 0: no user namespace */
};

/* Parse "UID:GID:SIZE"; -1 on a malformed value. */
int userns_parse(const char *text, struct userns_map *out);

/* Write /proc/PID/uid_map and gid_map (the shim does it between clone and `pid`: the child
 * waits for `go`, so it has its ids before its first step). setgroups stays "allow": the
 * writer is privileged and every group the container can name is mapped. -1 with the reason
 * in msg on failure. */
int userns_write_maps(pid_t pid, const struct userns_map *map, char *msg, size_t size);

/* Become root of the user namespace just entered (after clone + maps, or setns): until then
 * the process still holds host uid 0, which is unmapped there, and files it made would fail
 * with EOVERFLOW. Drops the host's supplementary groups too. -1 with errno on failure. */
int userns_become_root(void);

#endif
