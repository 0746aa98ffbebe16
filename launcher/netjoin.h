/* `--net join:PATH`: the container's init is born in an existing network namespace (one the
 * daemon made ahead, agent/network/prepared.py; PATH is where it can be opened, e.g.
 * /proc/DAEMON/fd/N) instead of a new one. The shim enters it just before the clone and goes
 * back to its own right after, so the init is in it from its first instruction (the daemon reads
 * /proc/PID/ns/net as soon as `pid` is reported) and the shim never keeps it alive. */
#ifndef CORRAL_NETJOIN_H
#define CORRAL_NETJOIN_H

#include <stddef.h>

struct netjoin {
	int target; /* the namespace to join */
	int home;   /* the shim's own, to go back to */
};

/* Open PATH and the shim's own namespace, and enter PATH's; on failure write why into msg,
 * nothing held, and return -1. */
int netjoin_enter(const char *path, struct netjoin *join, char *msg, size_t size);

/* Back to the shim's own namespace; both descriptors closed. -1 with msg on failure. */
int netjoin_leave(struct netjoin *join, char *msg, size_t size);

#endif
