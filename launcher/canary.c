/* `corral-launch canary --cgroup DIR [--netns FILE] (--connect IPv4:PORT | --syscall NR)`
 *
 * The end-to-end half of `corral policy prove` (agent/policy/canary.py): the process moves
 * itself into the container's cgroup v2 directory, where the egress programs and the kill
 * table apply, and into the container's network namespace, so a connect that the rule
 * fails to stop would leave from the container's side, never the host's. Then:
 *   --connect  a non-blocking TCP connect: EPERM from the egress program is "enforced"
 *              (exit 0); anything else (in progress, refused, connected) is "not" (exit 3).
 *   --syscall  the raw syscall with every argument 0; the probe's kill rule ends the process
 *              with the rule's signal, which the daemon reads from the wait status. If it
 *              returns, the process exits 3. Only syscalls the caller has checked are harmless
 *              with zero arguments are asked for (the daemon keeps the list).
 * It waits for a byte on stdin before it tries anything: the daemon writes it once it has
 * noted the pid, so the probe's report of the canary is never taken for the container's.
 * Exit 2 for a usage or set-up error (the check then says "canary failed").
 */
#define _GNU_SOURCE
#include "canary.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CANARY_ENFORCED 0
#define CANARY_SETUP 2
#define CANARY_NOT_ENFORCED 3

static int fail(const char *what)
{
	fprintf(stderr, "corral-launch canary: %s: %s\n", what, strerror(errno));
	return CANARY_SETUP;
}

static int join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, n;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	if (write(fd, pid, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int join_netns(const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (setns(fd, CLONE_NEWNET) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int try_connect(const char *target)
{
	char host[64];
	const char *colon = strrchr(target, ':');
	struct sockaddr_in address;
	int fd;

	if (!colon || colon == target || (size_t)(colon - target) >= sizeof(host)) {
		fprintf(stderr, "corral-launch canary: --connect %s: expected IPv4:PORT\n", target);
		return CANARY_SETUP;
	}
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	address.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
		fprintf(stderr, "corral-launch canary: --connect %s: not an IPv4 address\n", target);
		return CANARY_SETUP;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket");
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0 && errno == EPERM) {
		close(fd);
		printf("refused\n");
		return CANARY_ENFORCED;
	}
	printf("not refused: %s\n", strerror(errno));
	close(fd);
	return CANARY_NOT_ENFORCED;
}

int cmd_canary(int argc, char **argv)
{
	const char *cgroup = NULL, *netns = NULL, *target = NULL;
	long nr = -1;
	char go;
	int i;

	prctl(PR_SET_NAME, "corral-canary", 0, 0, 0);
	for (i = 2; i < argc; i++) {
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;

		if (!value)
			break;
		if (strcmp(argv[i], "--cgroup") == 0)
			cgroup = value;
		else if (strcmp(argv[i], "--netns") == 0)
			netns = value;
		else if (strcmp(argv[i], "--connect") == 0)
			target = value;
		else if (strcmp(argv[i], "--syscall") == 0)
			nr = strtol(value, NULL, 10);
		else
			break;
		i++;
	}
	if (i < argc || !cgroup || (!target) == (nr < 0)) {
		fprintf(stderr, "usage: corral-launch canary --cgroup DIR [--netns FILE] "
				"(--connect IPv4:PORT | --syscall NR)\n");
		return CANARY_SETUP;
	}
	if (netns && join_netns(netns) < 0)
		return fail(netns);
	if (join_cgroup(cgroup) < 0)
		return fail(cgroup);
	for (;;) {
		ssize_t got = read(0, &go, 1);

		if (got == 1)
			break;
		if (got < 0 && errno == EINTR)
			continue;
		if (got == 0)
			errno = EPIPE;
		return fail("waiting for the go on stdin");
	}
	if (target)
		return try_connect(target);
	fflush(stdout);
	syscall(nr, 0, 0, 0, 0, 0, 0);
	printf("returned\n");
	return CANARY_NOT_ENFORCED;
}
