/* The attach socket and its clients' frame queues (attach.h). */
#define _GNU_SOURCE
#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fds.h"
#include "logfile.h"
#include "report.h"
#include "tty.h"

#define FLUSH_MS 2000 /* how long the last output may take to reach the clients at exit */

/* Bind the socket through a descriptor of its directory, so a path longer than sun_path
 * (state directories are deep) still works. */
static int listen_at(const char *path, char *msg, size_t size)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir) || strlen(slash + 1) > 64) {
		snprintf(msg, size, "usage: --attach-socket \"%s\": expected /DIR/NAME", path);
		return -1;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	int dirfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		snprintf(msg, size, "open the attach socket's directory \"%s\": %s", dir, strerror(errno));
		return -1;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d/%s", dirfd, slash + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(msg, size, "attach socket: %s", strerror(errno));
		close(dirfd);
		return -1;
	}
	unlink(addr.sun_path); /* one left by an earlier run of this container */
	mode_t old = umask(0177); /* 0600: only root (the daemon) may attach */
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(msg, size, "listen on \"%s\": %s", path, strerror(errno));
		if (rc == 0)
			unlink(addr.sun_path);
		close(fd);
		close(dirfd);
		return -1;
	}
	close(dirfd);
	return fd;
}

/* A shim that fails before its pump (abort, a failed exec) leaves no socket behind. */
static const char *socket_to_remove;

void attach_remove_socket(void)
{
	if (socket_to_remove)
		unlink(socket_to_remove);
	socket_to_remove = NULL;
}

int attach_listen(const char *path, char *msg, size_t size)
{
	int fd = listen_at(path, msg, size);
	if (fd < 0)
		return -1;
	socket_to_remove = path;
	atexit(attach_remove_socket);
	return fd;
}

void client_drop(struct client *c)
{
	close_fd(&c->fd);
	free(c->out);
	free(c->in);
	*c = (struct client){.fd = -1};
}

void client_flush(struct client *c)
{
	while (c->fd >= 0 && c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->deaf = 1;
			c->out_len = 0;
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
}

void client_queue_frame(struct client *c, int type, const void *data, size_t len)
{
	if (c->fd < 0 || c->deaf)
		return;
	size_t need = c->out_len + 8 + len;
	if (need > CLIENT_OUT_MAX) {
		note(0, "an attached client is too far behind: dropping it (the log keeps the output)");
		client_drop(c);
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 65536;
		while (cap < need)
			cap *= 2;
		char *grown = realloc(c->out, cap);
		if (grown == NULL) {
			client_drop(c);
			return;
		}
		c->out = grown;
		c->out_cap = cap;
	}
	log_frame_header((unsigned char *)c->out + c->out_len, type, len);
	memcpy(c->out + c->out_len + 8, data, len);
	c->out_len = need;
	client_flush(c);
}

void client_accept(struct client *clients, int listen_fd, int log_fd, int tty)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &clients[i];
		if (c->fd >= 0)
			continue;
		*c = (struct client){.fd = fd, .in = malloc(8 + ATTACH_FRAME_MAX)};
		if (c->in == NULL) {
			client_drop(c);
			return;
		}
		/* The log's size now: everything before it is in the log, everything after comes
		 * on this connection, so the daemon can replay the one and follow the other. */
		struct stat st;
		uint64_t offset = (log_fd >= 0 && fstat(log_fd, &st) == 0) ? (uint64_t)st.st_size : 0;
		unsigned char hello[9];
		for (int b = 0; b < 8; b++)
			hello[b] = (unsigned char)(offset >> (56 - 8 * b));
		hello[8] = tty ? 1 : 0;
		client_queue_frame(c, ATTACH_HELLO, hello, sizeof(hello));
		return;
	}
	close(fd); /* full: the daemon reports the refusal */
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void clients_goodbye(struct client *clients, int code)
{
	char text[16];
	int len = snprintf(text, sizeof(text), "%d", code);
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_queue_frame(&clients[i], ATTACH_EXIT, text, (size_t)len);
	long deadline = now_ms() + FLUSH_MS;
	for (;;) {
		struct pollfd pfd[MAX_CLIENTS];
		int n = 0;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (clients[i].fd >= 0 && clients[i].out_len > 0)
				pfd[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLOUT};
		long left = deadline - now_ms();
		if (n == 0 || left <= 0)
			break;
		poll(pfd, (nfds_t)n, (int)left);
		for (int i = 0; i < MAX_CLIENTS; i++)
			client_flush(&clients[i]);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			client_drop(&clients[i]);
}
