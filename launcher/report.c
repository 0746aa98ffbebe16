/* The launcher's messages (report.h). */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Format "MESSAGE[: strerror(err)]" into buf (always terminated, newlines flattened). */
size_t vformat(char *buf, size_t size, int err, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);
	size_t len = n < 0 ? 0 : ((size_t)n >= size ? size - 1 : (size_t)n);
	if (err) {
		n = snprintf(buf + len, size - len, ": %s", strerror(err));
		len += n < 0 ? 0 : ((size_t)n >= size - len ? size - len - 1 : (size_t)n);
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	return len;
}

void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Write "error MESSAGE\n" on fd. */
static void verror_line(int fd, int err, const char *fmt, va_list ap)
{
	char line[MSG_MAX + 8];
	memcpy(line, "error ", 6);
	size_t len = 6 + vformat(line + 6, MSG_MAX, err, fmt, ap);
	line[len++] = '\n';
	write_all(fd, line, len);
}

void error_line(int fd, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror_line(fd, err, fmt, ap);
	va_end(ap);
}

/* A diagnostic for the shim's own log (fd 2). */
void note(int err, const char *fmt, ...)
{
	char line[MSG_MAX + 32];
	memcpy(line, "corral-launch: ", 15);
	va_list ap;
	va_start(ap, fmt);
	size_t len = 15 + vformat(line + 15, MSG_MAX, err, fmt, ap);
	va_end(ap);
	line[len++] = '\n';
	write_all(2, line, len);
}
