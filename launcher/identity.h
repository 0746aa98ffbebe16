/* --user USER[:GROUP] and --group-add, resolved as Docker resolves them in the container's own
 * /etc/passwd and /etc/group (so after pivot_root, or after joining the mount namespace for
 * exec): the ids to switch to, the supplementary groups, and HOME. */
#ifndef CORRAL_IDENTITY_H
#define CORRAL_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

#define MAX_GROUPS 64

/* A --user resolved in the container's /etc/passwd and /etc/group. */
struct identity {
	int set;
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int ngroups;
	char home[256];
};

/* --user and --group-add: the identity to switch to (root's entry when only groups are
 * added, as under Docker); id->set stays 0 when neither is given. Returns 0, or -1 with the
 * reason in msg. */
int resolve_identity(const char *user, const char **group_add, int ngroup_add, struct identity *id,
		     char *msg, size_t size);

/* HOME from the passwd entry when env (allocated with room for one more) has none. */
void default_home(char **env, const struct identity *id);

#endif
