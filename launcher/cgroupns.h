/* The container's cgroup namespace and its cgroups at /sys/fs/cgroup, as Docker shows them
 * (hybrid hosts: a tmpfs with one directory per v1 hierarchy plus "unified"; pure v2 hosts:
 * the cgroup2 root), read-only unless --privileged, so its limits are changed only by the
 * daemon. Done in the init after `go`, once the shim has placed it in its cgroups (place.h). */
#ifndef CORRAL_CGROUPNS_H
#define CORRAL_CGROUPNS_H

#include "container.h"

/* Read /proc/self/cgroup (the paths as the host names them), unshare the cgroup namespace
 * (which makes them all "/"), and mount the container's cgroups in rootfd's /sys/fs/cgroup.
 * Fails through child_fail. */
void enter_cgroup_namespace(const struct child_ctx *ctx, int rootfd);

#endif
