/* The container's filesystem tree (rootfs.h). */
#define _GNU_SOURCE
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "inroot.h"

/* Paths Docker hides from containers, and those it makes read-only. */
static const char *const MASKED_PATHS[] = {
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const READONLY_PATHS[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};
/* Device nodes bind-mounted from the host into the container's /dev tmpfs. */
static const char *const DEVICES[] = {"null", "zero", "full", "random", "urandom", "tty"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void setup_dev(const struct child_ctx *ctx, int rootfd)
{
	if (mount_in_root(rootfd, "/dev", 0, "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME,
			  "mode=755,size=65536k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/dev\"");
	int devfd = open_in_root(rootfd, "/dev", O_DIRECTORY);
	if (devfd < 0)
		child_fail(ctx, errno, "open \"/dev\"");
	for (size_t i = 0; i < COUNT(DEVICES); i++) {
		char host[32];
		snprintf(host, sizeof(host), "/dev/%s", DEVICES[i]);
		int fd = openat(devfd, DEVICES[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 || close(fd) < 0 || mount_at(devfd, DEVICES[i], host, NULL, MS_BIND, NULL) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\"", host, host);
	}
	if (mkdirat(devfd, "pts", 0755) < 0 ||
	    mount_at(devfd, "pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
		child_fail(ctx, errno, "mount devpts on \"/dev/pts\"");
	if (mkdirat(devfd, "shm", 01777) < 0 ||
	    mount_at(devfd, "shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/dev/shm\"");
	static const char *const links[][2] = {
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	};
	for (size_t i = 0; i < COUNT(links); i++)
		if (symlinkat(links[i][0], devfd, links[i][1]) < 0)
			child_fail(ctx, errno, "symlink \"/dev/%s\"", links[i][1]);
	close(devfd);
}

static void setup_sys(const struct child_ctx *ctx, int rootfd)
{
	unsigned long flags = (ctx->opts->privileged ? 0 : MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount_in_root(rootfd, "/sys", 0, "sysfs", "sysfs", flags, NULL) == 0)
		return;
	int err = errno;
	/* sysfs shows the mounter's netns; sharing the host's may refuse a new instance. Not
	 * recursive: the host's cgroup, bpf and tracing mounts under /sys stay out. */
	if (ctx->opts->net != NET_HOST)
		child_fail(ctx, err, "mount sysfs on \"/sys\"");
	if (mount_in_root(rootfd, "/sys", 0, "/sys", NULL, MS_BIND, NULL) < 0)
		child_fail(ctx, errno, "bind \"/sys\" on \"/sys\" (after mount sysfs: %s)", strerror(err));
	if (!ctx->opts->privileged && remount_ro_in_root(rootfd, "/sys") < 0)
		child_fail(ctx, errno, "remount \"/sys\" read-only");
}

void setup_writable(const struct child_ctx *ctx, int rootfd)
{
	const struct run_opts *o = ctx->opts;
	for (int i = 0; i < o->ntmpfs; i++)
		if (mount_in_root(rootfd, o->tmpfs[i].dst, 0, "tmpfs", "tmpfs", o->tmpfs[i].flags, o->tmpfs[i].data) < 0)
			child_fail(ctx, errno, "mount tmpfs on \"%s\"", o->tmpfs[i].dst);
	if (!o->read_only)
		return;
	if (o->proc.workdir) { /* made now: it cannot be made once the root is read-only */
		int fd = ensure_in_root(rootfd, o->proc.workdir, 0);
		if (fd < 0)
			child_fail(ctx, errno, "create workdir \"%s\"", o->proc.workdir);
		close(fd);
	}
	if (remount_ro_in_root(rootfd, "/") < 0)
		child_fail(ctx, errno, "remount the root read-only");
}

void setup_binds(const struct child_ctx *ctx, int rootfd)
{
	const struct run_opts *o = ctx->opts;
	for (int i = 0; i < o->nbinds; i++) {
		const struct bind *b = &o->binds[i];
		struct stat st;
		if (stat(b->src, &st) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\": source", b->src, b->dst);
		if (mount_in_root(rootfd, b->dst, !S_ISDIR(st.st_mode), b->src, NULL, MS_BIND | MS_REC, NULL) < 0)
			child_fail(ctx, errno, "bind \"%s\" on \"%s\"", b->src, b->dst);
		if (b->readonly && remount_ro_in_root(rootfd, b->dst) < 0)
			child_fail(ctx, errno, "remount bind \"%s\" read-only", b->dst);
	}
}

void mask_paths(const struct child_ctx *ctx)
{
	for (size_t i = 0; i < COUNT(MASKED_PATHS); i++) {
		const char *path = MASKED_PATHS[i];
		struct stat st;
		if (stat(path, &st) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(ctx, errno, "mask \"%s\"", path);
		}
		int rc = S_ISDIR(st.st_mode)
				 ? mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
				 : mount("/dev/null", path, NULL, MS_BIND, NULL);
		if (rc < 0)
			child_fail(ctx, errno, "mask \"%s\"", path);
	}
	for (size_t i = 0; i < COUNT(READONLY_PATHS); i++) {
		const char *path = READONLY_PATHS[i];
		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(ctx, errno, "bind \"%s\" read-only", path);
		}
		if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  NULL) < 0)
			child_fail(ctx, errno, "remount \"%s\" read-only", path);
	}
}

static void loopback_up(const struct child_ctx *ctx)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		child_fail(ctx, errno, "bring \"lo\" up: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		child_fail(ctx, errno, "bring \"lo\" up: get flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		child_fail(ctx, errno, "bring \"lo\" up");
	close(s);
}

/* ------------------------------------------------------------ the container */

int prepare_root(const struct child_ctx *ctx)
{
	const struct run_opts *o = ctx->opts;
	/* Nothing mounted from here on may propagate to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		child_fail(ctx, errno, "make \"/\" rslave");
	if (o->net != NET_HOST)
		loopback_up(ctx);

	/* pivot_root needs a mount point; the bind also keeps host submounts of it. */
	if (mount(o->rootfs, o->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(ctx, errno, "bind rootfs \"%s\"", o->rootfs);
	int rootfd = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		child_fail(ctx, errno, "open rootfs \"%s\"", o->rootfs);
	if (mount_in_root(rootfd, "/proc", 0, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(ctx, errno, "mount proc on \"/proc\"");
	setup_dev(ctx, rootfd);
	setup_sys(ctx, rootfd);
	return rootfd;
}

void enter_root(const struct child_ctx *ctx, int rootfd)
{
	const struct run_opts *o = ctx->opts;
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the new. */
	if (fchdir(rootfd) < 0)
		child_fail(ctx, errno, "chdir rootfs \"%s\"", o->rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(ctx, errno, "pivot_root \"%s\"", o->rootfs);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(ctx, errno, "detach the old root");
	if (chdir("/") < 0)
		child_fail(ctx, errno, "chdir \"/\"");
	close(rootfd);
}
