/* `corral-launch exec --pid PID [options] -- CMD [ARG...]`: run a command inside the
 * namespaces and cgroups of a running container, as the container's user with its
 * capabilities, limits and seccomp filter; the launcher stays as its parent, forwards the
 * signals a process sends it and exits with the command's code. With --tty the terminal's
 * master goes to the daemon over fd 1 (SCM_RIGHTS). */
#ifndef CORRAL_EXEC_H
#define CORRAL_EXEC_H

/* Returns the command's exit code, 125 when the launcher failed before it (reported as
 * `error ...` on fd 2), 126/127 when it could not be run. */
int cmd_exec(int argc, char **argv);

#endif
