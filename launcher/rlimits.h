/* --ulimit NAME=SOFT:HARD: resource limits set in the container's init (and in each exec)
 * before the capabilities are dropped. */
#ifndef CORRAL_RLIMITS_H
#define CORRAL_RLIMITS_H

#include <sys/resource.h>

struct ulimit {
	const char *name; /* Docker's name: nofile, nproc, core, ... */
	int resource;     /* RLIMIT_* */
	struct rlimit limit;
};

/* Parse "nofile=1024:2048" (-1 is unlimited); 0, or -1 when the name or numbers are bad. */
int parse_ulimit(const char *text, struct ulimit *out);

/* setrlimit each one; 0, or -1 with errno set and *failed naming the limit. */
int apply_ulimits(const struct ulimit *limits, int n, const char **failed);

#endif
