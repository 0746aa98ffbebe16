/* The image's /etc/passwd and /etc/group, read by --user (identity.c) and --group-add
 * (groups.c) after pivot_root. The image is not trusted: only a regular file is read, opened
 * without blocking, so a FIFO or a device put there cannot hang or feed the init. */
#ifndef CORRAL_ETCFILE_H
#define CORRAL_ETCFILE_H

#include <stdio.h>

/* path opened for reading when it is a regular file; NULL otherwise (or when it is missing). */
FILE *open_etc(const char *path);

/* 1 when s is a non-empty string of decimal digits (a uid or gid, not a name). */
int all_digits(const char *s);

#endif
