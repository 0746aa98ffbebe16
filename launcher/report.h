/* The launcher's messages: one line each, naming the step and the value at fault. `error
 * MESSAGE` lines answer the daemon on a pipe (fd 1 of run, fd 2 of exec); notes go to the shim's
 * own log (fd 2), which outlives the daemon's reading of fd 1. */
#ifndef CORRAL_REPORT_H
#define CORRAL_REPORT_H

#include <stdarg.h>
#include <stddef.h>

#define MSG_MAX 1024 /* < PIPE_BUF, so an error line is written atomically */

/* Format "MESSAGE[: strerror(err)]" into buf (always terminated, newlines flattened); returns
 * its length. */
size_t vformat(char *buf, size_t size, int err, const char *fmt, va_list ap);

/* Write all of data, retrying on EINTR; gives up silently on any other failure. */
void write_all(int fd, const void *data, size_t len);

/* Write "error MESSAGE[: strerror(err)]\n" on fd. */
void error_line(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "corral-launch: MESSAGE[: strerror(err)]" on fd 2, the shim's own log. */
void note(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
