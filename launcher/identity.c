/* --user and --group-add in the container's /etc files (identity.h). */
#define _GNU_SOURCE
#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcfile.h"
#include "groups.h"

/* Split a colon-separated line in place into at most n fields (empty fields kept). */
static int split_fields(char *line, char **fields, int n)
{
	int count = 0;
	line[strcspn(line, "\n")] = '\0';
	while (count < n) {
		fields[count++] = line;
		char *colon = strchr(line, ':');
		if (colon == NULL)
			break;
		*colon = '\0';
		line = colon + 1;
	}
	return count;
}

/* USER[:GROUP] (names or numbers) as Docker resolves it: a name must be in /etc/passwd, the
 * primary group is the passwd entry's unless GROUP is given, and the supplementary groups are
 * those of /etc/group that list the user. Returns 0, or -1 with the reason in msg. */
static int resolve_user(const char *spec, struct identity *id, char *msg, size_t size)
{
	char user[256], group[256] = "", name[256] = "", *line = NULL, *f[7];
	size_t cap = 0;
	memset(id, 0, sizeof(*id));
	if (snprintf(user, sizeof(user), "%s", spec) >= (int)sizeof(user)) {
		snprintf(msg, size, "user \"%s\": too long", spec);
		return -1;
	}
	char *colon = strchr(user, ':');
	if (colon) {
		*colon = '\0';
		snprintf(group, sizeof(group), "%s", colon + 1);
	}
	int numeric = all_digits(user), found = 0;
	unsigned long uid = numeric ? strtoul(user, NULL, 10) : 0;
	FILE *file = open_etc("/etc/passwd");
	while (file && getline(&line, &cap, file) > 0) {
		if (split_fields(line, f, 7) < 4)
			continue;
		if (numeric ? (all_digits(f[2]) && strtoul(f[2], NULL, 10) == uid) : strcmp(f[0], user) == 0) {
			uid = strtoul(f[2], NULL, 10);
			id->gid = (gid_t)strtoul(f[3], NULL, 10);
			snprintf(name, sizeof(name), "%s", f[0]);
			if (f[5] && f[5][0])
				snprintf(id->home, sizeof(id->home), "%s", f[5]);
			found = 1;
			break;
		}
	}
	if (file)
		fclose(file);
	if (!numeric && !found) {
		free(line);
		snprintf(msg, size, "unable to find user %s: no matching entries in passwd file", user);
		return -1;
	}
	if (uid > 0xfffffffeUL) {
		free(line);
		snprintf(msg, size, "user \"%s\": uid out of range", user);
		return -1;
	}
	id->uid = (uid_t)uid;
	int group_found = group[0] == '\0' || all_digits(group);
	if (all_digits(group))
		id->gid = (gid_t)strtoul(group, NULL, 10);
	id->groups[id->ngroups++] = id->gid;
	file = open_etc("/etc/group");
	while (file && getline(&line, &cap, file) > 0) {
		if (split_fields(line, f, 4) < 3)
			continue;
		gid_t gid = (gid_t)strtoul(f[2], NULL, 10);
		if (!group_found && strcmp(f[0], group) == 0) {
			id->gid = id->groups[0] = gid;
			group_found = 1;
		}
		/* Membership: the fourth field lists user names separated by commas. */
		for (char *m = f[3] && name[0] ? f[3] : NULL, *next; m && *m && id->ngroups < MAX_GROUPS; m = next) {
			next = strchr(m, ',');
			if (next)
				*next++ = '\0';
			if (strcmp(m, name) == 0 && gid != id->groups[0])
				id->groups[id->ngroups++] = gid;
		}
	}
	if (file)
		fclose(file);
	free(line);
	if (!group_found) {
		snprintf(msg, size, "unable to find group %s: no matching entries in group file", group);
		return -1;
	}
	id->set = 1;
	return 0;
}

/* HOME from the passwd entry when the environment has none (Docker sets it too). */
void default_home(char **env, const struct identity *id)
{
	size_t n = 0;
	for (; env[n]; n++)
		if (strncmp(env[n], "HOME=", 5) == 0)
			return;
	char *home = malloc(strlen(id->home[0] ? id->home : "/") + 6);
	if (home == NULL)
		return;
	sprintf(home, "HOME=%s", id->home[0] ? id->home : "/");
	env[n] = home; /* env has room: it was allocated for every argument */
}

/* --user and --group-add: the identity to switch to (root's entry when only groups are
 * added, as under Docker); id->set stays 0 when neither is given. */
int resolve_identity(const char *user, const char **group_add, int ngroup_add, struct identity *id,
		     char *msg, size_t size)
{
	if (user == NULL && ngroup_add == 0)
		return 0;
	if (resolve_user(user ? user : "0", id, msg, size) < 0)
		return -1;
	return add_groups(group_add, ngroup_add, id->groups, &id->ngroups, MAX_GROUPS, msg, size);
}
