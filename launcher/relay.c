/*
 * The shim's loop (tty.h, console_pump_until_exit): one poll(2) over the init's output (the
 * terminal's master, or its stdout and stderr pipes), the stdin being written, the listening
 * socket, every client and the init's pidfd (without one, waitpid every 100 ms), until the init
 * has exited; then the rest of the output, the socket removed, EXIT to every client. Without
 * --tty, --stdin and --attach-socket that is the pipes into the log and the pidfd alone.
 *
 * Input from clients goes through one buffer of STDIN_MAX: a client whose frame does not fit
 * is not read until it does, so a container that does not read its stdin slows the client
 * down, as a pipe would, and never the shim.
 */
#define _GNU_SOURCE
#include "tty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "attach.h"
#include "exitstatus.h"
#include "fds.h"
#include "report.h"

#define STDIN_MAX (256 * 1024)
#define READ_CHUNK 65536

struct loop {
	struct console_pump *p;
	struct client clients[MAX_CLIENTS];
	int master;          /* -1 without a terminal */
	int master_readable; /* 0 once it reads EIO: no process has the terminal open */
	int input;           /* where STDIN frames go: the master or the stdin pipe; -1: nowhere */
	int close_input;     /* STDIN_EOF asked for: close the pipe once the buffer is written */
	char stdin_buf[STDIN_MAX];
	size_t stdin_len;
	char *chunk;
};

static void output(struct loop *l, int stream, const char *data, size_t len)
{
	if (l->p->log)
		l->p->log(l->p->log_ctx, stream, data, len);
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_queue_frame(&l->clients[i], stream, data, len);
}

static void close_input(struct loop *l)
{
	if (l->input >= 0 && l->input != l->master)
		close(l->input);
	l->input = -1;
	l->close_input = 0;
	l->stdin_len = 0;
}

static void write_input(struct loop *l)
{
	while (l->input >= 0 && l->stdin_len > 0) {
		ssize_t n = write(l->input, l->stdin_buf, l->stdin_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) { /* the container closed its end: what is left has no reader */
			close_input(l);
			return;
		}
		memmove(l->stdin_buf, l->stdin_buf + n, l->stdin_len - (size_t)n);
		l->stdin_len -= (size_t)n;
	}
	if (l->close_input && l->stdin_len == 0)
		close_input(l);
}

/* Handle the complete frames c has sent; 0 when one must wait for room in the stdin buffer. */
static int handle_frames(struct loop *l, struct client *c)
{
	while (c->fd >= 0 && c->in_len >= 8) {
		int type = c->in[0];
		size_t len = ((size_t)c->in[4] << 24) | ((size_t)c->in[5] << 16) | ((size_t)c->in[6] << 8) | c->in[7];
		if (len > ATTACH_FRAME_MAX || c->in[1] || c->in[2] || c->in[3]) {
			note(0, "an attached client sent a bad frame: dropping it");
			client_drop(c);
			return 1;
		}
		if (c->in_len < 8 + len)
			return 1;
		const unsigned char *data = c->in + 8;
		if (type == ATTACH_STDIN && l->input >= 0 && !l->close_input) {
			if (l->stdin_len + len > STDIN_MAX)
				return 0;
			memcpy(l->stdin_buf + l->stdin_len, data, len);
			l->stdin_len += len;
			write_input(l);
		} else if (type == ATTACH_STDIN_EOF && l->input >= 0 && l->master < 0) {
			l->close_input = 1;
			write_input(l);
		} else if (type == ATTACH_RESIZE && len == 4 && l->master >= 0) {
			struct winsize ws = {.ws_row = (unsigned short)(data[0] << 8 | data[1]),
					     .ws_col = (unsigned short)(data[2] << 8 | data[3])};
			if (ioctl(l->master, TIOCSWINSZ, &ws) < 0)
				note(errno, "resize the terminal");
		}
		memmove(c->in, c->in + 8 + len, c->in_len - 8 - len);
		c->in_len -= 8 + len;
	}
	return 1;
}

static void read_client(struct loop *l, struct client *c)
{
	ssize_t n = read(c->fd, c->in + c->in_len, 8 + ATTACH_FRAME_MAX - c->in_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) { /* gone (detached, or the daemon stopped): the container goes on */
		client_drop(c);
		return;
	}
	c->in_len += (size_t)n;
	handle_frames(l, c);
}

/* Read once from an output fd; 0 when it is done (end of file, or EIO of a terminal). */
static int pump_output(struct loop *l, int fd, int stream)
{
	ssize_t n;
	while ((n = read(fd, l->chunk, READ_CHUNK)) < 0 && errno == EINTR)
		;
	if (n > 0) {
		output(l, stream, l->chunk, (size_t)n);
		return 1;
	}
	return n < 0 && errno == EAGAIN;
}

/* Everything fd still holds, without waiting for more. */
static void drain(struct loop *l, int fd, int stream)
{
	for (;;) {
		ssize_t n = read(fd, l->chunk, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		output(l, stream, l->chunk, (size_t)n);
	}
}

int console_pump_until_exit(pid_t pid, struct console_pump *p)
{
	static struct loop l; /* large (the stdin buffer); one per shim */
	l.p = p;
	l.master = -1;
	l.input = -1;
	l.chunk = malloc(READ_CHUNK);
	for (int i = 0; i < MAX_CLIENTS; i++)
		l.clients[i] = (struct client){.fd = -1};
	struct console_ends *e = p->ends;
	if (e->sock_shim >= 0) {
		/* Sent before the exec that closed the error pipe, so it is waiting. */
		l.master = console_recv_fd(e->sock_shim);
		if (l.master < 0)
			note(errno, "receive the container's terminal (its output is lost)");
		else
			fcntl(l.master, F_SETFL, O_NONBLOCK);
		close_fd(&e->sock_shim);
		l.master_readable = l.master >= 0;
	}
	if (p->opts->open_stdin)
		l.input = l.master >= 0 ? l.master : e->stdin_w;
	else
		close_fd(&e->stdin_w);
	if (e->stdin_w >= 0)
		fcntl(e->stdin_w, F_SETFL, O_NONBLOCK);
	int outs[2] = {p->out_r, p->err_r};
	for (int i = 0; i < 2; i++)
		if (outs[i] >= 0)
			fcntl(outs[i], F_SETFL, O_NONBLOCK);
	int pidfd = open_pidfd(pid);
	int status = 0, exited = 0;
	if (l.chunk == NULL) {
		note(ENOMEM, "output buffer");
		exit(1);
	}
	while (!exited) {
		struct pollfd pfd[5 + MAX_CLIENTS];
		int n = 0, at_master = -1, at_listen = -1, at_pid = -1, at_input = -1, at_out[2] = {-1, -1};
		int at_client[MAX_CLIENTS];
		if (l.master >= 0) {
			short ev = (l.master_readable ? POLLIN : 0) | (l.input == l.master && l.stdin_len ? POLLOUT : 0);
			if (ev) {
				at_master = n;
				pfd[n++] = (struct pollfd){.fd = l.master, .events = ev};
			}
		}
		if (l.input >= 0 && l.input != l.master && l.stdin_len) {
			at_input = n;
			pfd[n++] = (struct pollfd){.fd = l.input, .events = POLLOUT};
		}
		for (int i = 0; i < 2; i++) {
			if (outs[i] >= 0) {
				at_out[i] = n;
				pfd[n++] = (struct pollfd){.fd = outs[i], .events = POLLIN};
			}
		}
		if (e->listen_fd >= 0) {
			at_listen = n;
			pfd[n++] = (struct pollfd){.fd = e->listen_fd, .events = POLLIN};
		}
		if (pidfd >= 0) {
			at_pid = n;
			pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		}
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &l.clients[i];
			at_client[i] = -1;
			if (c->fd < 0)
				continue;
			/* A client whose stdin does not fit yet is not read: it waits, as a pipe would. */
			short ev = (c->out_len ? POLLOUT : 0) |
				   (c->in_len < 8 + ATTACH_FRAME_MAX && handle_frames(&l, c) ? POLLIN : 0);
			if (c->fd >= 0 && ev) {
				at_client[i] = n;
				pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
			}
		}
		int rc = poll(pfd, (nfds_t)n, pidfd >= 0 ? -1 : 100);
		if (rc < 0 && errno != EINTR) {
			note(errno, "poll");
			break;
		}
		if (rc <= 0 && pidfd >= 0)
			continue;
		if (at_master >= 0 && (pfd[at_master].revents & POLLOUT))
			write_input(&l);
		if (at_master >= 0 && (pfd[at_master].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !pump_output(&l, l.master, ATTACH_STDOUT))
			l.master_readable = 0; /* EIO: nobody has the terminal open now */
		if (at_input >= 0 && pfd[at_input].revents)
			write_input(&l);
		for (int i = 0; i < 2; i++) {
			if (at_out[i] >= 0 && (pfd[at_out[i]].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !pump_output(&l, outs[i], i + 1))
				close_fd(&outs[i]);
		}
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &l.clients[i];
			if (at_client[i] < 0 || c->fd < 0)
				continue;
			short rev = pfd[at_client[i]].revents;
			if (rev & POLLOUT)
				client_flush(c);
			if (c->fd >= 0 && (rev & (POLLIN | POLLHUP | POLLERR)))
				read_client(&l, c);
		}
		if (at_listen >= 0 && (pfd[at_listen].revents & POLLIN))
			client_accept(l.clients, e->listen_fd, p->log_fd, l.master >= 0);
		if (at_pid >= 0 ? (pfd[at_pid].revents & POLLIN) : waitpid(pid, &status, WNOHANG) == pid) {
			if (at_pid >= 0) {
				wait_status(pid, &status);
			}
			exited = 1;
		}
	}
	/* The pid namespace died with its init: what is left in the pipes and the terminal is
	 * all there will be. */
	if (l.master_readable)
		drain(&l, l.master, ATTACH_STDOUT);
	for (int i = 0; i < 2; i++) {
		if (outs[i] >= 0)
			drain(&l, outs[i], i + 1);
		close_fd(&outs[i]);
	}
	/* Nobody may attach any more: the socket goes before the exit is recorded. */
	attach_remove_socket();
	close_fd(&e->listen_fd);
	int code = exit_code(status);
	clients_goodbye(l.clients, code);
	if (l.input >= 0)
		close_input(&l);
	close_fd(&l.master);
	if (pidfd >= 0)
		close(pidfd);
	free(l.chunk);
	return code;
}
