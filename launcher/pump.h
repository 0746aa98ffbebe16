/* The shim's plain loop (no --tty, --stdin or --attach-socket; tty.h has the other): the
 * init's stdout and stderr into the log as Docker frames until the init has exited (learnt
 * from a pidfd, or by polling waitpid on kernels without one), then what is left in the
 * pipes. */
#ifndef CORRAL_PUMP_H
#define CORRAL_PUMP_H

#include <sys/types.h>

#include "logfile.h"

/* Pump the init's stdout/stderr into the log until it has exited and the pipes are drained;
 * closes both. Returns its exit code (exitstatus.h). */
int pump_until_exit(pid_t pid, int out_r, int err_r, struct log_sink *log);

#endif
