/* The container's privileges, last step before seccomp and exec: the capability sets (Docker's
 * default unless --caps), the switch to --user, and no_new_privs. Switching the user while
 * every capability is still held is what lets a set without SETUID/SETGID still change ids. */
#ifndef CORRAL_CAPS_H
#define CORRAL_CAPS_H

#include <stdint.h>

#include <linux/capability.h>

#include "identity.h"

/* Docker's default capability set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID
 * SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE = 0xa80425fb. */
#define CAP(c) (UINT64_C(1) << (c))
#define DOCKER_CAPS                                                                        \
	(CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FSETID) | CAP(CAP_FOWNER) |          \
	 CAP(CAP_MKNOD) | CAP(CAP_NET_RAW) | CAP(CAP_SETGID) | CAP(CAP_SETUID) |               \
	 CAP(CAP_SETFCAP) | CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) |                     \
	 CAP(CAP_SYS_CHROOT) | CAP(CAP_KILL) | CAP(CAP_AUDIT_WRITE))

/* Parse a --caps mask ("0xa80425fb", any base strtoull takes); 0, or -1 when it is not one. */
int parse_caps(const char *text, uint64_t *out);

/* Bounding set, the user, effective/permitted/inheritable, ambient, no_new_privs. The user is
 * switched while every capability is still held (PR_SET_KEEPCAPS), so dropping SETUID or
 * SETGID does not stop it; for a non-root user exec then clears the effective set, as under
 * Docker. Returns the failed step's name, or NULL. */
const char *drop_capabilities(uint64_t caps, const struct identity *id, int *err);

#endif
