/* --seccomp FILE: the container's (and each exec's) seccomp filter. The daemon compiles the
 * profile into a raw `struct sock_filter[]` file; the launcher only reads and installs it, the
 * very last step before exec, so no libseccomp is linked. Read before the clone (and before
 * setns for exec), while the host path is still visible. */
#ifndef CORRAL_SECCOMP_H
#define CORRAL_SECCOMP_H

#include <stddef.h>

#include <linux/filter.h>

struct seccomp_prog {
	struct sock_filter *insns;
	unsigned short len; /* 0: no filter */
};

/* Read the raw `struct sock_filter[]` file (path NULL: no filter); returns 0, or -1 with the
 * reason in msg. */
int read_seccomp(const char *path, struct seccomp_prog *prog, char *msg, size_t size);

/* Install the filter (none: nothing); prctl's result, errno set on failure. */
int install_seccomp(const struct seccomp_prog *filter);

#endif
