/*
 * escape_probe: one escape attempt per sub-command, made from inside a container by
 * tests/integration/test_escape.py (compiled -static there, bind-mounted read-only).
 *
 * Prints "ok" when the attempt's syscall succeeded, else the errno's name ("EPERM"), and
 * then, for some attempts, what it read. Exits 0 either way: the test judges the output.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/reboot.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void report(long rc)
{
	if (rc >= 0) {
		printf("ok\n");
		return;
	}
	const char *name = strerrorname_np(errno);
	printf("%s\n", name ? name : "E?");
}

#define KEY_SPEC_USER_KEYRING -4
#define KEYCTL_READ 11

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *what = argv[1];
	const char *arg = argc > 2 ? argv[2] : "";
	long rc;
	if (strcmp(what, "unshare-user") == 0) {
		rc = unshare(CLONE_NEWUSER);
	} else if (strcmp(what, "unshare-cgroup") == 0) {
		rc = unshare(CLONE_NEWCGROUP);
	} else if (strcmp(what, "clone-user") == 0) {
		rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
		if (rc == 0)
			_exit(0);
	} else if (strcmp(what, "clone3") == 0) {
		uint64_t args[11] = {0};
		args[4] = SIGCHLD; /* exit_signal */
		rc = syscall(SYS_clone3, args, sizeof(args));
		if (rc == 0)
			_exit(0);
	} else if (strcmp(what, "mount-cgroup-memory") == 0) {
		mkdir("/tmp/cg", 0755);
		rc = mount("cgroup", "/tmp/cg", "cgroup", 0, "memory");
	} else if (strcmp(what, "mount-tmpfs") == 0) {
		mkdir("/tmp/mnt", 0755);
		rc = mount("none", "/tmp/mnt", "tmpfs", 0, NULL);
	} else if (strcmp(what, "umount-proc") == 0) {
		rc = umount2("/proc", MNT_DETACH);
	} else if (strcmp(what, "pivot-root") == 0) {
		rc = syscall(SYS_pivot_root, "/tmp", "/tmp");
	} else if (strcmp(what, "add-key") == 0) {
		rc = syscall(SYS_add_key, "user", "corral-escape", "x", 1, KEY_SPEC_USER_KEYRING);
	} else if (strcmp(what, "read-key") == 0) {
		/* arg: the host key's serial; the keyring is not namespaced. */
		char buf[256] = {0};
		rc = syscall(SYS_keyctl, KEYCTL_READ, atol(arg), buf, sizeof(buf) - 1);
		report(rc);
		if (rc >= 0)
			printf("%s\n", buf);
		return 0;
	} else if (strcmp(what, "request-key") == 0) {
		rc = syscall(SYS_request_key, "user", arg, NULL, KEY_SPEC_USER_KEYRING);
	} else if (strcmp(what, "init-module") == 0) {
		rc = syscall(SYS_init_module, NULL, 0, "");
	} else if (strcmp(what, "finit-module") == 0) {
		int fd = open("/escape/escape_probe", O_RDONLY);
		rc = syscall(SYS_finit_module, fd, "", 0);
	} else if (strcmp(what, "bpf") == 0) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		rc = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	} else if (strcmp(what, "perf-event-open") == 0) {
		char attr[128] = {0};
		*(uint32_t *)(attr + 4) = sizeof(attr);  /* size; type 0 = hardware */
		rc = syscall(SYS_perf_event_open, attr, 0, -1, -1, 0);
	} else if (strcmp(what, "userfaultfd") == 0) {
		rc = syscall(SYS_userfaultfd, 0);
	} else if (strcmp(what, "kill") == 0) {
		rc = kill(atoi(arg), SIGKILL);
	} else if (strcmp(what, "ptrace") == 0) {
		rc = ptrace(PTRACE_ATTACH, atoi(arg), 0, 0);
	} else if (strcmp(what, "open-by-handle") == 0) {
		struct {
			unsigned int bytes;
			int type;
			unsigned char f[128];
		} handle = {.bytes = 128};
		int mount_id;
		/* A handle for "/" made inside, then opened: the call the "shocker" escape used. */
		if (syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &handle, &mount_id, 0) < 0) {
			handle.bytes = 8;
			handle.type = 1;
		}
		rc = syscall(SYS_open_by_handle_at, AT_FDCWD, &handle, O_RDONLY);
	} else if (strcmp(what, "raw-socket") == 0) {
		rc = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	} else if (strcmp(what, "settimeofday") == 0) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		rc = settimeofday(&tv, NULL);
	} else if (strcmp(what, "clock-settime") == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		rc = clock_settime(CLOCK_REALTIME, &ts);
	} else if (strcmp(what, "reboot") == 0) {
		rc = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART, NULL);
	} else if (strcmp(what, "personality-no-aslr") == 0) {
		rc = syscall(SYS_personality, 0x0040000); /* ADDR_NO_RANDOMIZE */
	} else if (strcmp(what, "write") == 0) {
		/* arg: PATH=VALUE */
		char path[512];
		snprintf(path, sizeof(path), "%s", arg);
		char *value = strchr(path, '=');
		if (value == NULL)
			return 2;
		*value++ = '\0';
		int fd = open(path, O_WRONLY);
		rc = fd < 0 ? -1 : write(fd, value, strlen(value));
	} else {
		fprintf(stderr, "unknown attempt %s\n", what);
		return 2;
	}
	report(rc);
	return 0;
}
