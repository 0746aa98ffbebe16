/* --ulimit: Docker's names for the rlimits, parsed and applied with setrlimit. Raising a hard
 * limit needs CAP_SYS_RESOURCE, which the init still holds here (before it drops its
 * capabilities); without it the kernel says EPERM and the start fails naming the limit. */
#include "rlimits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int resource;
} NAMES[] = {
	{"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
	{"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},     {"memlock", RLIMIT_MEMLOCK},
	{"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},       {"nofile", RLIMIT_NOFILE},
	{"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},         {"rtprio", RLIMIT_RTPRIO},
	{"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
};

/* A limit value: decimal digits, or -1 for unlimited. */
static int parse_value(const char *text, size_t len, rlim_t *out)
{
	if (len == 2 && strncmp(text, "-1", 2) == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	if (len == 0 || len > 20)
		return -1;
	rlim_t value = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		rlim_t next = value * 10 + (rlim_t)(text[i] - '0');
		if (next / 10 != value)
			return -1;
		value = next;
	}
	*out = value;
	return 0;
}

int parse_ulimit(const char *text, struct ulimit *out)
{
	const char *eq = strchr(text, '=');
	if (eq == NULL)
		return -1;
	size_t name_len = (size_t)(eq - text);
	out->name = NULL;
	for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
		if (strlen(NAMES[i].name) == name_len && strncmp(NAMES[i].name, text, name_len) == 0) {
			out->name = NAMES[i].name;
			out->resource = NAMES[i].resource;
		}
	}
	if (out->name == NULL)
		return -1;
	const char *soft = eq + 1, *colon = strchr(soft, ':');
	const char *hard = colon ? colon + 1 : soft;
	if (parse_value(soft, colon ? (size_t)(colon - soft) : strlen(soft), &out->limit.rlim_cur) < 0 ||
	    parse_value(hard, strlen(hard), &out->limit.rlim_max) < 0)
		return -1;
	/* RLIM_INFINITY is the largest value, so "unlimited" compares as it should. */
	if (out->limit.rlim_cur > out->limit.rlim_max)
		return -1;
	return 0;
}

int apply_ulimits(const struct ulimit *limits, int n, const char **failed)
{
	for (int i = 0; i < n; i++) {
		if (setrlimit(limits[i].resource, &limits[i].limit) < 0) {
			*failed = limits[i].name;
			return -1;
		}
	}
	return 0;
}
