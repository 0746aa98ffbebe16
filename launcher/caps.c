/* Capabilities, the user switch and no_new_privs (caps.h). */
#define _GNU_SOURCE
#include "caps.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int parse_caps(const char *text, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 0);
	if (*text == '\0' || *end != '\0' || errno != 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

const char *drop_capabilities(uint64_t caps, const struct identity *id, int *err)
{
	/* Never more than we hold: --privileged (every capability) under a daemon that lacks one
	 * gets all the daemon has, as under Docker. */
	struct __user_cap_header_struct held_hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct held[2];
	if (syscall(SYS_capget, &held_hdr, held) == 0)
		caps &= (uint64_t)held[0].permitted | ((uint64_t)held[1].permitted << 32);
	for (int cap = 0; cap < 64; cap++) {
		if (caps & CAP(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL) /* past the kernel's last capability */
				break;
			*err = errno;
			return "drop capability from the bounding set";
		}
	}
	if (id && id->set) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups((size_t)id->ngroups, id->groups) < 0 ||
		    setresgid(id->gid, id->gid, id->gid) < 0 || setresuid(id->uid, id->uid, id->uid) < 0 ||
		    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) {
			*err = errno;
			return "switch to the user";
		}
	}
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	for (int i = 0; i < 2; i++) {
		uint32_t word = (uint32_t)(caps >> (32 * i));
		data[i].effective = data[i].permitted = data[i].inheritable = word;
	}
	if (syscall(SYS_capset, &hdr, data) < 0) {
		*err = errno;
		return "capset";
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		*err = errno;
		return "clear ambient capabilities";
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*err = errno;
		return "set no_new_privs";
	}
	return NULL;
}
