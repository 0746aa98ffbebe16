/* --group-add GROUP: supplementary groups added to the container user's, as Docker's. */
#ifndef CORRAL_GROUPS_H
#define CORRAL_GROUPS_H

#include <stddef.h>
#include <sys/types.h>

/* Append each of names (a group name from the container's /etc/group, or a gid) to groups
 * (*ngroups of max used), skipping duplicates. Returns 0, or -1 with the reason in msg. Runs
 * after pivot_root, so /etc/group is the image's. */
int add_groups(const char *const *names, int n, gid_t *groups, int *ngroups, int max, char *msg, size_t size);

#endif
