/* --init: a tiny init as the container's pid 1, reaping orphans and forwarding signals. */
#ifndef CORRAL_INIT_H
#define CORRAL_INIT_H

/* Remember where main's argv lives, so the init can show a short command line instead of the
 * launcher's (which names host paths). */
void init_keep_argv(int argc, char **argv);

/* Fork the command. Returns 0 in the child, which goes on to exec it, or -1 with errno when
 * fork fails. The parent never returns: it stays pid 1, forwards every signal it receives to
 * the child, reaps every process that ends in the container, and exits with the child's
 * status (128+signal when it was killed). err_fd, the CLOEXEC error pipe, is closed in the
 * parent so the shim learns of the exec from the child alone. */
int become_init(int err_fd);

#endif
