/* --group-add: names resolved in the image's /etc/group, numbers taken as they are (they need
 * not exist there, as under Docker). */
#include "groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcfile.h"

/* The gid of group `name` in /etc/group. */
static int lookup_group(const char *name, gid_t *gid)
{
	FILE *file = open_etc("/etc/group");
	if (file == NULL)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int found = -1;
	size_t len = strlen(name);
	while (found < 0 && getline(&line, &cap, file) > 0) {
		/* name:password:gid:members */
		if (strncmp(line, name, len) != 0 || line[len] != ':')
			continue;
		char *gid_field = strchr(line + len + 1, ':');
		if (gid_field == NULL)
			continue;
		gid_field++;
		char *end;
		unsigned long value = strtoul(gid_field, &end, 10);
		if (end != gid_field && (*end == ':' || *end == '\n' || *end == '\0') && value <= 0xfffffffeUL) {
			*gid = (gid_t)value;
			found = 0;
		}
	}
	free(line);
	fclose(file);
	return found;
}

int add_groups(const char *const *names, int n, gid_t *groups, int *ngroups, int max, char *msg, size_t size)
{
	for (int i = 0; i < n; i++) {
		gid_t gid;
		if (all_digits(names[i])) {
			unsigned long value = strtoul(names[i], NULL, 10);
			if (strlen(names[i]) > 10 || value > 0xfffffffeUL) {
				snprintf(msg, size, "group-add \"%s\": gid out of range", names[i]);
				return -1;
			}
			gid = (gid_t)value;
		} else if (lookup_group(names[i], &gid) < 0) {
			snprintf(msg, size, "unable to find group %s: no matching entries in group file", names[i]);
			return -1;
		}
		int seen = 0;
		for (int j = 0; j < *ngroups; j++)
			seen |= groups[j] == gid;
		if (seen)
			continue;
		if (*ngroups >= max) {
			snprintf(msg, size, "group-add \"%s\": more than %d groups", names[i], max);
			return -1;
		}
		groups[(*ngroups)++] = gid;
	}
	return 0;
}
