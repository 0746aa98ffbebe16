/* The seccomp filter from its file into the kernel (seccomp.h). */
#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/seccomp.h>

/* Read the raw `struct sock_filter[]` file; returns 0 or an errno-style failure in msg. */
int read_seccomp(const char *path, struct seccomp_prog *prog, char *msg, size_t size)
{
	prog->insns = NULL;
	prog->len = 0;
	if (path == NULL)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(msg, size, "read seccomp \"%s\": %s", path, strerror(errno));
		return -1;
	}
	size_t want = (size_t)st.st_size;
	if (want == 0 || want % sizeof(struct sock_filter) != 0 ||
	    want / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(msg, size,
			 "read seccomp \"%s\": size %zu is not a BPF program (a non-empty multiple of %zu bytes, at most %d instructions)",
			 path, want, sizeof(struct sock_filter), BPF_MAXINSNS);
		close(fd);
		return -1;
	}
	char *buf = malloc(want);
	size_t got = 0;
	while (buf != NULL && got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int err = errno;
	close(fd);
	if (buf == NULL || got != want) {
		snprintf(msg, size, "read seccomp \"%s\": %s", path,
			 buf == NULL ? "out of memory" : (got < want ? "file shrank while reading" : strerror(err)));
		return -1;
	}
	prog->insns = (struct sock_filter *)buf;
	prog->len = (unsigned short)(want / sizeof(struct sock_filter));
	return 0;
}

int install_seccomp(const struct seccomp_prog *filter)
{
	if (filter->len == 0)
		return 0;
	struct sock_fprog prog = {.len = filter->len, .filter = filter->insns};
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
