/* The launcher's file descriptors: at start fds 0-2 made to exist and every other inherited one
 * closed (the shim outlives the daemon, so it must hold none of the daemon's fds), and the
 * close that marks a slot unused. */
#ifndef CORRAL_FDS_H
#define CORRAL_FDS_H

/* Make sure fds 0-2 exist, so fds we open later never land on them. */
void ensure_std_fds(void);

/* Close every fd the caller leaked to us beyond 0-2 (the shim outlives the daemon). */
void close_inherited_fds(void);

/* Close *fd when it is open and set it to -1 (unused). */
void close_fd(int *fd);

#endif
