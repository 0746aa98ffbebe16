/* Signals reset and the command exec'd (command.h). */
#define _GNU_SOURCE
#include "command.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The daemon (Python) ignores SIGPIPE and may block signals; a container starts clean. */
void reset_signals(void)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP and glibc's own */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static const char *env_get(char **env, const char *key)
{
	size_t len = strlen(key);
	for (; *env; env++)
		if (strncmp(*env, key, len) == 0 && (*env)[len] == '=')
			return *env + len + 1;
	return NULL;
}

/* execve argv[0], searched in the container's PATH like execvp; returns the errno. */
int exec_command(char **argv, char **env)
{
	const char *cmd = argv[0];
	if (cmd[0] == '\0')
		return ENOENT;
	if (strchr(cmd, '/')) {
		execve(cmd, argv, env);
		return errno;
	}
	const char *path = env_get(env, "PATH");
	if (path == NULL)
		path = DEFAULT_PATH;
	int denied = 0;
	char full[PATH_MAX];
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int dirlen = (int)(end - p);
		int n = dirlen == 0 ? snprintf(full, sizeof(full), "%s", cmd)
				    : snprintf(full, sizeof(full), "%.*s/%s", dirlen, p, cmd);
		if (n > 0 && (size_t)n < sizeof(full)) {
			execve(full, argv, env);
			switch (errno) {
			case EACCES:
				denied = 1;
				break;
			case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: case ENAMETOOLONG:
				break;
			default:
				return errno;
			}
		}
		if (*end == '\0')
			break;
		p = end;
	}
	return denied ? EACCES : ENOENT;
}
