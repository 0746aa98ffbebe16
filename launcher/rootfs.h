/* The container's filesystem tree, built in the init: "/" made rslave, the rootfs bound on
 * itself, /proc, a /dev tmpfs with the host's safe device nodes and a private devpts, /sys
 * (read-only unless --privileged); later --bind, --tmpfs and --read-only, pivot_root into it,
 * and Docker's masked and read-only paths. All mounts inside the root go through inroot.h.
 * Every failure ends the init through child_fail. */
#ifndef CORRAL_ROOTFS_H
#define CORRAL_ROOTFS_H

#include "container.h"

/* The root's mounts that need neither the cgroups nor the cgroup namespace: "/" rslave, lo
 * up, the rootfs bound on itself, /proc, /dev, /sys. Returns the rootfs, O_PATH. */
int prepare_root(const struct child_ctx *ctx);

/* --bind mounts (after the cgroups, so a volume may cover e.g. /dev/shm). */
void setup_binds(const struct child_ctx *ctx, int rootfd);

/* --tmpfs mounts, then --read-only: the root itself read-only, its mounts as they are. */
void setup_writable(const struct child_ctx *ctx, int rootfd);

/* pivot_root into rootfd and detach the old root; closes rootfd. */
void enter_root(const struct child_ctx *ctx, int rootfd);

/* After pivot_root: hide and freeze what Docker hides and freezes in /proc and /sys. */
void mask_paths(const struct child_ctx *ctx);

#endif
