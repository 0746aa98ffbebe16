/* The start of a container, as the shim tells it to the daemon on fds 1 and 0 (docs/
 * ARCHITECTURE.md, "The launcher", steps 2-5): `pid N` once the init is in its cgroups (the
 * daemon sets up the network namespace meanwhile), then the daemon's `go`, which the shim
 * passes on to the init over the sync pipe, then `started` once the command was exec'd (the
 * init's CLOEXEC error pipe closed empty) or `error MESSAGE` with the init's reason. Until
 * `go` the init only sets up what needs no cgroup, so an aborted start leaves nothing. */
#ifndef CORRAL_HANDSHAKE_H
#define CORRAL_HANDSHAKE_H

#include <sys/types.h>

/* Say `pid`, wait for `go`, pass it on through sync_w (closed), read the init's error pipe
 * err_r (closed) and say `started`. Returns 0 when the command runs, or -1 once the init is
 * killed and reaped and the reason reported (on fd 1, or on fd 2 when fd 1 failed). */
int handshake_start(pid_t pid, int sync_w, int err_r);

#endif
