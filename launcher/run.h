/* `corral-launch run [options] -- CMD [ARG...]`: parse the options, clone the container's
 * init into new namespaces and its cgroups (place.h), start it (handshake.h), then stay as its
 * shim: relay its output to the log (and its terminal, stdin and attach socket when asked for;
 * tty.h) and record its exit code (exitstatus.h). */
#ifndef CORRAL_RUN_H
#define CORRAL_RUN_H

/* Returns the launcher's exit status: 0 once the container ran and its exit was recorded, 1
 * when it could not be started (reported as `error ...` on fd 1). */
int cmd_run(int argc, char **argv);

#endif
