/* Mounts inside the container's root, resolved in it (inroot.h). */
#define _GNU_SOURCE
#include "inroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

int open_in_root(int rootfd, const char *rel, int flags)
{
	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(O_PATH | O_CLOEXEC | flags);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = openat(rootfd, rel, O_PATH | O_CLOEXEC | flags);
	return fd;
}

int ensure_in_root(int rootfd, const char *rel, int as_file)
{
	int fd = open_in_root(rootfd, rel, as_file ? 0 : O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof(parent), "%s", rel) >= (int)sizeof(parent)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	char *slash = strrchr(parent, '/');
	const char *name = slash ? slash + 1 : parent;
	if (slash)
		*slash = '\0';
	int pfd = ensure_in_root(rootfd, slash ? parent : "/", 0);
	if (pfd < 0)
		return -1;
	int rc;
	if (as_file) {
		rc = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (rc >= 0)
			close(rc);
	} else {
		rc = mkdirat(pfd, name, 0755);
	}
	int err = errno;
	close(pfd);
	if (rc < 0 && err != EEXIST) {
		errno = err;
		return -1;
	}
	return open_in_root(rootfd, rel, as_file ? 0 : O_DIRECTORY);
}

static const char *fd_path(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return buf;
}

/* Mount flags of the mount at path, to keep them when remounting read-only. */
static unsigned long kept_flags(const char *path)
{
	struct statvfs st;
	unsigned long flags = 0;
	if (statvfs(path, &st) < 0)
		return 0;
	if (st.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (st.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (st.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (st.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (st.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (st.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

/* Mount on what fd (O_PATH) names, through /proc/self/fd/N, then close fd keeping the mount's
 * errno; -1 with open's errno when fd is -1. */
static int mount_on_fd(int fd, const char *src, const char *fstype, unsigned long flags, const char *data)
{
	char buf[64];
	if (fd < 0)
		return -1;
	int rc = mount(src, fd_path(fd, buf, sizeof(buf)), fstype, flags, data);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* Remount the mount on what fd names read-only, keeping its other flags; closes fd. */
static int remount_ro_fd(int fd)
{
	char buf[64];
	if (fd < 0)
		return -1;
	unsigned long kept = kept_flags(fd_path(fd, buf, sizeof(buf)));
	return mount_on_fd(fd, NULL, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, NULL);
}

int remount_ro_in_root(int rootfd, const char *rel)
{
	return remount_ro_fd(open_in_root(rootfd, rel, 0));
}

int mount_in_root(int rootfd, const char *rel, int as_file, const char *src,
		  const char *fstype, unsigned long flags, const char *data)
{
	return mount_on_fd(ensure_in_root(rootfd, rel, as_file), src, fstype, flags, data);
}

int mount_at(int dirfd, const char *name, const char *src, const char *fstype,
	     unsigned long flags, const char *data)
{
	return mount_on_fd(openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC), src, fstype, flags, data);
}

int remount_ro_at(int dirfd, const char *name)
{
	return remount_ro_fd(openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
}
