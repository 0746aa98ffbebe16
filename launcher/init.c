/* --init: the launcher's own code stays as the container's pid 1, like Docker's docker-init
 * (tini). Not a binary bind-mounted into the container: the launcher is linked against the
 * host's glibc, which a static busybox or a musl image does not have, while the process cloned
 * for the container already runs the launcher's code. It forks after every step of the
 * set-up (user, capabilities, no_new_privs, seccomp), so it holds no more than the command.
 *
 * Why a container wants one: pid 1 of a pid namespace gets no signal it has no handler for
 * (a shell as pid 1 ignores `corral stop`'s SIGTERM), and orphans are re-parented to it (a
 * command that never waits leaves zombies that fill the pid limit). */
#include "init.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char *arg_start;
static size_t arg_len;

void init_keep_argv(int argc, char **argv)
{
	if (argc < 1)
		return;
	char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	for (int i = 1; i < argc; i++) /* only when the strings are packed as the kernel lays them */
		if (argv[i] != argv[i - 1] + strlen(argv[i - 1]) + 1)
			return;
	arg_start = argv[0];
	arg_len = (size_t)(end - argv[0]);
}

static int status_code(int status)
{
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int become_init(int err_fd)
{
	sigset_t all, before;
	sigfillset(&all);
	/* Blocked before fork, so no signal is lost between fork and the first wait. */
	sigprocmask(SIG_SETMASK, &all, &before);
	pid_t child = fork();
	if (child < 0) {
		sigprocmask(SIG_SETMASK, &before, NULL);
		return -1;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &before, NULL);
		return 0;
	}
	close(err_fd);
	prctl(PR_SET_NAME, "init", 0, 0, 0);
	if (arg_start != NULL && arg_len > 1) {
		memset(arg_start, 0, arg_len);
		snprintf(arg_start, arg_len, "corral-init");
	}
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(child, sig); /* SIGTERM from `corral stop`, Ctrl-C, SIGHUP, ... */
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == child)
				_exit(status_code(status)); /* the rest of the namespace dies with pid 1 */
	}
}
