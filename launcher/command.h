/* The last steps of a process that becomes the container's command (the init, or an exec's
 * child): a clean signal state, then execve searched in the container's PATH. */
#ifndef CORRAL_COMMAND_H
#define CORRAL_COMMAND_H

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Default dispositions for every signal and an empty mask: the daemon (Python) ignores
 * SIGPIPE and may block signals; a container starts clean. */
void reset_signals(void);

/* execve argv[0], searched in env's PATH (else DEFAULT_PATH) like execvp; returns the errno. */
int exec_command(char **argv, char **env);

#endif
