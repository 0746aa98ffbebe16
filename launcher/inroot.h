/* Mounts inside the container's root that a symlink in the image cannot redirect to the host:
 * every target is resolved with openat2(RESOLVE_IN_ROOT) (plain openat on kernels without it)
 * and mounted through /proc/self/fd/N, so the path the kernel mounts on is the one resolved.
 * Missing targets are created (a file when the source is a file). */
#ifndef CORRAL_INROOT_H
#define CORRAL_INROOT_H

/* An O_PATH fd for rel resolved inside rootfd as if it were "/" (symlinks in the image cannot
 * point out of it). Falls back to plain openat on kernels without openat2. */
int open_in_root(int rootfd, const char *rel, int flags);

/* Like open_in_root, creating what is missing: directories, and the last component as an
 * empty file when as_file. */
int ensure_in_root(int rootfd, const char *rel, int as_file);

/* Remount the mount now on top of rel (resolved in the root) read-only, keeping its flags. */
int remount_ro_in_root(int rootfd, const char *rel);

/* Mount (src, fstype, flags, data) on rel inside the root, creating the mount point. */
int mount_in_root(int rootfd, const char *rel, int as_file, const char *src, const char *fstype,
		  unsigned long flags, const char *data);

/* Mount on name inside dirfd (a fresh tmpfs we made: no symlinks to fear). */
int mount_at(int dirfd, const char *name, const char *src, const char *fstype, unsigned long flags,
	     const char *data);

/* Remount the mount on name inside dirfd read-only (keeping its other flags). */
int remount_ro_at(int dirfd, const char *name);

#endif
