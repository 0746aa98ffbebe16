/* --net join:PATH (netjoin.h). */
#define _GNU_SOURCE
#include "netjoin.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int netjoin_enter(const char *path, struct netjoin *join, char *msg, size_t size)
{
	join->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (join->home < 0) {
		snprintf(msg, size, "open \"/proc/self/ns/net\": %s", strerror(errno));
		return -1;
	}
	join->target = open(path, O_RDONLY | O_CLOEXEC);
	if (join->target < 0) {
		snprintf(msg, size, "--net join: open \"%s\": %s", path, strerror(errno));
		close(join->home);
		return -1;
	}
	/* setns checks that it is a network namespace (EINVAL otherwise). */
	if (setns(join->target, CLONE_NEWNET) < 0) {
		snprintf(msg, size, "--net join: enter the network namespace \"%s\": %s", path, strerror(errno));
		close(join->target);
		close(join->home);
		return -1;
	}
	return 0;
}

int netjoin_leave(struct netjoin *join, char *msg, size_t size)
{
	int rc = setns(join->home, CLONE_NEWNET);
	if (rc < 0)
		snprintf(msg, size, "go back to the shim's network namespace: %s", strerror(errno));
	close(join->target);
	close(join->home);
	return rc;
}
