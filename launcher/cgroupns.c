/* The cgroup namespace and the container's cgroup mounts (cgroupns.h). */
#define _GNU_SOURCE
#include "cgroupns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inroot.h"

/* The container's own cgroups at /sys/fs/cgroup, as Docker shows them: each hierarchy the
 * init belongs to (table: /proc/self/cgroup read before the cgroup namespace was made),
 * mounted in the container's cgroup namespace so it sees only its own subtree, and read-only
 * (unless --privileged), so its limits are changed only by the daemon. Hybrid hosts get a
 * tmpfs with one directory per v1 hierarchy plus "unified"; pure v2 hosts the cgroup2 root. */
static void setup_cgroups(const struct child_ctx *ctx, int rootfd, char *table)
{
	const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	const int ro = !ctx->opts->privileged;
	const char *newline = strchr(table, '\n');
	if (strncmp(table, "0::", 3) == 0 && (newline == NULL || newline[1] == '\0')) { /* only v2 */
		if (mount_in_root(rootfd, "/sys/fs/cgroup", 0, "cgroup2", "cgroup2", flags, NULL) < 0)
			child_fail(ctx, errno, "mount cgroup2 on \"/sys/fs/cgroup\"");
		if (ro && remount_ro_in_root(rootfd, "/sys/fs/cgroup") < 0)
			child_fail(ctx, errno, "remount \"/sys/fs/cgroup\" read-only");
		return;
	}
	if (mount_in_root(rootfd, "/sys/fs/cgroup", 0, "tmpfs", "tmpfs", flags, "mode=755,size=64k") < 0)
		child_fail(ctx, errno, "mount tmpfs on \"/sys/fs/cgroup\"");
	int dirfd = open_in_root(rootfd, "/sys/fs/cgroup", O_DIRECTORY);
	if (dirfd < 0)
		child_fail(ctx, errno, "open \"/sys/fs/cgroup\"");
	char *save = NULL;
	for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* "ID:CONTROLLERS:PATH"; v2 has no controllers. */
		char *controllers = strchr(line, ':'), *path;
		if (controllers == NULL || (path = strchr(++controllers, ':')) == NULL)
			continue;
		*path++ = '\0';
		int v2 = controllers[0] == '\0';
		const char *name = v2 ? "unified" : (strncmp(controllers, "name=", 5) == 0 ? controllers + 5 : controllers);
		if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
			child_fail(ctx, errno, "create \"/sys/fs/cgroup/%s\"", name);
		int rc = mount_at(dirfd, name, "cgroup", v2 ? "cgroup2" : "cgroup", flags, v2 ? NULL : controllers);
		if (rc < 0 && errno == EPERM) {
			/* Not allowed to mount a hierarchy here (a user namespace): bind our subtree. */
			char host[PATH_MAX];
			snprintf(host, sizeof(host), "/sys/fs/cgroup/%s%s", name, path);
			rc = mount_at(dirfd, name, host, NULL, MS_BIND, NULL);
		}
		if (rc < 0)
			child_fail(ctx, errno, "mount cgroup \"%s\" on \"/sys/fs/cgroup/%s\"", controllers, name);
		if (ro && remount_ro_at(dirfd, name) < 0)
			child_fail(ctx, errno, "remount \"/sys/fs/cgroup/%s\" read-only", name);
		/* Co-mounted controllers ("cpu,cpuacct") get a link per controller, as on the host. */
		if (!v2 && strchr(name, ',')) {
			char list[256], *part_save = NULL;
			snprintf(list, sizeof(list), "%s", name);
			for (char *part = strtok_r(list, ",", &part_save); part; part = strtok_r(NULL, ",", &part_save))
				if (symlinkat(name, dirfd, part) < 0 && errno != EEXIST)
					child_fail(ctx, errno, "symlink \"/sys/fs/cgroup/%s\"", part);
		}
	}
	close(dirfd);
	if (ro && remount_ro_in_root(rootfd, "/sys/fs/cgroup") < 0)
		child_fail(ctx, errno, "remount \"/sys/fs/cgroup\" read-only");
}

void enter_cgroup_namespace(const struct child_ctx *ctx, int rootfd)
{
	/* Our cgroups as the host names them, before the namespace makes them all "/". */
	static char cgroup_table[8192];
	int table_fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	ssize_t table_len = table_fd < 0 ? -1 : read(table_fd, cgroup_table, sizeof(cgroup_table) - 1);
	if (table_len <= 0)
		child_fail(ctx, errno, "read \"/proc/self/cgroup\"");
	cgroup_table[table_len] = '\0';
	close(table_fd);
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(ctx, errno, "unshare cgroup namespace");
	setup_cgroups(ctx, rootfd, cgroup_table);
}
