/*
 * Terminals, stdin and the attach socket (see tty.h for the contract).
 *
 * Why the shim and not the daemon holds the terminal: the daemon restarts (upgrades, crashes)
 * and a client comes and goes, but a shell in a container must keep its terminal, its input
 * and every byte it wrote. The shim is the one process that lives exactly as long as the
 * container, so it owns the master, the stdin pipe and the socket clients attach through.
 */
#define _GNU_SOURCE
#include "tty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define MAX_CLIENTS 16
#define CLIENT_OUT_MAX (4 << 20) /* a client this far behind is dropped; the log has it all */
#define STDIN_MAX (256 * 1024)
#define READ_CHUNK 65536
#define FLUSH_MS 2000 /* how long the last output may take to reach the clients at exit */

static void tty_note(int err, const char *what)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "corral-launch: %s%s%s\n", what, err ? ": " : "",
			 err ? strerror(err) : "");
	if (n > 0 && write(2, line, (size_t)n) < 0)
		return;
}

/* ------------------------------------------------------------ set-up */

int console_parse_size(const char *text, struct console_opts *o)
{
	unsigned rows, cols;
	char end;
	if (sscanf(text, "%u,%u%c", &rows, &cols, &end) != 2 || rows > 0xffff || cols > 0xffff)
		return -1;
	o->rows = (unsigned short)rows;
	o->cols = (unsigned short)cols;
	return 0;
}

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

static void remove_socket(void)
{
	if (socket_to_remove)
		unlink(socket_to_remove);
	socket_to_remove = NULL;
}

int console_prepare(const struct console_opts *o, struct console_ends *e, char *msg, size_t size)
{
	*e = (struct console_ends){-1, -1, -1, -1, -1};
	int p[2];
	if (o->open_stdin && !o->tty) {
		if (pipe2(p, O_CLOEXEC) < 0) {
			snprintf(msg, size, "stdin pipe: %s", strerror(errno));
			return -1;
		}
		e->stdin_r = p[0];
		e->stdin_w = p[1];
	}
	if (o->tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
			snprintf(msg, size, "terminal socket pair: %s", strerror(errno));
			return -1;
		}
		e->sock_init = p[0];
		e->sock_shim = p[1];
	}
	if (o->socket_path) {
		if ((e->listen_fd = listen_at(o->socket_path, msg, size)) < 0)
			return -1;
		socket_to_remove = o->socket_path;
		atexit(remove_socket);
	}
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void console_init_side(struct console_ends *e)
{
	close_fd(&e->stdin_w);
	close_fd(&e->sock_shim);
	close_fd(&e->listen_fd);
}

void console_shim_side(struct console_ends *e)
{
	close_fd(&e->stdin_r);
	close_fd(&e->sock_init);
}

/* ------------------------------------------------------------ the terminal */

const char *console_open(int *master, int *slave)
{
	/* /dev/pts/ptmx, not /dev/ptmx: the container may replace the /dev/ptmx link, but not
	 * what is inside its devpts. Checked to be a devpts master before use. */
	int fd = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	struct statfs fs;
	int unlock = 0;
	if (fd < 0)
		return "open \"/dev/pts/ptmx\"";
	if (fstatfs(fd, &fs) < 0 || fs.f_type != DEVPTS_SUPER_MAGIC) {
		close(fd);
		errno = EPERM;
		return "check \"/dev/pts/ptmx\" is on devpts";
	}
	/* O_NONBLOCK only kept the open from hanging on something that is not a terminal. */
	if (fcntl(fd, F_SETFL, 0) < 0 || ioctl(fd, TIOCSPTLCK, &unlock) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return "unlock the terminal";
	}
	/* TIOCGPTPEER opens the slave without a path, so nothing can be swapped in between.
	 * Opened now, so the master never reads EIO (no slave yet) before the command runs. */
	int peer = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (peer < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return "open the terminal's slave";
	}
	*master = fd;
	*slave = peer;
	return NULL;
}

const char *console_become(int slave, int uid, unsigned short rows, unsigned short cols)
{
	if (uid >= 0 && fchown(slave, (uid_t)uid, (gid_t)-1) < 0)
		return "give the terminal to the user";
	if (rows || cols) {
		struct winsize ws = {.ws_row = rows, .ws_col = cols};
		if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
			return "set the terminal's size";
	}
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return "make the terminal the controlling one";
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			return "make the terminal stdin, stdout and stderr";
	if (slave > 2)
		close(slave);
	return NULL;
}

int console_send_fd(int sock, int fd)
{
	char byte = 't';
	struct iovec iov = {&byte, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = {&byte, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = n < 0 ? errno : EPROTO;
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

const char *console_take(const struct console_opts *o, struct console_ends *e, int uid)
{
	if (e->stdin_r >= 0 && dup2(e->stdin_r, 0) < 0)
		return "make the stdin pipe stdin";
	close_fd(&e->stdin_r);
	if (!o->tty)
		return NULL;
	int master = -1, slave = -1;
	const char *step = console_open(&master, &slave);
	if (step == NULL)
		step = console_become(slave, uid, o->rows, o->cols);
	if (step == NULL && console_send_fd(e->sock_init, master) < 0)
		step = "hand the terminal to the shim";
	int err = errno;
	if (master >= 0)
		close(master);
	close_fd(&e->sock_init);
	errno = err;
	return step;
}

/* ------------------------------------------------------------ the shim's loop */

struct client {
	int fd; /* -1: free slot */
	char *out;
	size_t out_len, out_cap;
	unsigned char *in; /* one frame from the daemon, being read */
	size_t in_len;
};

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

static void drop_client(struct client *c)
{
	close_fd(&c->fd);
	free(c->out);
	free(c->in);
	*c = (struct client){.fd = -1};
}

/* Send what is queued for c without blocking; a client that went away is dropped. */
static void flush_client(struct client *c)
{
	while (c->fd >= 0 && c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			drop_client(c);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
}

static void queue_frame(struct client *c, int type, const void *data, size_t len)
{
	if (c->fd < 0)
		return;
	size_t need = c->out_len + 8 + len;
	if (need > CLIENT_OUT_MAX) {
		tty_note(0, "an attached client is too far behind: dropping it (the log keeps the output)");
		drop_client(c);
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 65536;
		while (cap < need)
			cap *= 2;
		char *grown = realloc(c->out, cap);
		if (grown == NULL) {
			drop_client(c);
			return;
		}
		c->out = grown;
		c->out_cap = cap;
	}
	unsigned char hdr[8] = {(unsigned char)type, 0, 0, 0, (unsigned char)(len >> 24),
				(unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len};
	memcpy(c->out + c->out_len, hdr, 8);
	memcpy(c->out + c->out_len + 8, data, len);
	c->out_len = need;
	flush_client(c);
}

static void output(struct loop *l, int stream, const char *data, size_t len)
{
	if (l->p->log)
		l->p->log(l->p->log_ctx, stream, data, len);
	for (int i = 0; i < MAX_CLIENTS; i++)
		queue_frame(&l->clients[i], stream, data, len);
}

static void accept_client(struct loop *l)
{
	int fd = accept4(l->p->ends->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &l->clients[i];
		if (c->fd >= 0)
			continue;
		*c = (struct client){.fd = fd, .in = malloc(8 + ATTACH_FRAME_MAX)};
		if (c->in == NULL) {
			drop_client(c);
			return;
		}
		/* The log's size now: everything before it is in the log, everything after comes
		 * on this connection, so the daemon can replay the one and follow the other. */
		struct stat st;
		uint64_t offset = (l->p->log_fd >= 0 && fstat(l->p->log_fd, &st) == 0) ? (uint64_t)st.st_size : 0;
		unsigned char hello[9];
		for (int b = 0; b < 8; b++)
			hello[b] = (unsigned char)(offset >> (56 - 8 * b));
		hello[8] = l->master >= 0 ? 1 : 0;
		queue_frame(c, ATTACH_HELLO, hello, sizeof(hello));
		return;
	}
	close(fd); /* full: the daemon reports the refusal */
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
			tty_note(0, "an attached client sent a bad frame: dropping it");
			drop_client(c);
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
				tty_note(errno, "resize the terminal");
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
		drop_client(c);
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

static int exit_code_of(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* At exit: the last output and the exit code to every client, for at most FLUSH_MS. */
static void say_goodbye(struct loop *l, int code)
{
	char text[16];
	int len = snprintf(text, sizeof(text), "%d", code);
	for (int i = 0; i < MAX_CLIENTS; i++)
		queue_frame(&l->clients[i], ATTACH_EXIT, text, (size_t)len);
	long deadline = now_ms() + FLUSH_MS;
	for (;;) {
		struct pollfd pfd[MAX_CLIENTS];
		int n = 0;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (l->clients[i].fd >= 0 && l->clients[i].out_len > 0)
				pfd[n++] = (struct pollfd){.fd = l->clients[i].fd, .events = POLLOUT};
		long left = deadline - now_ms();
		if (n == 0 || left <= 0)
			break;
		poll(pfd, (nfds_t)n, (int)left);
		for (int i = 0; i < MAX_CLIENTS; i++)
			flush_client(&l->clients[i]);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (l->clients[i].fd >= 0)
			drop_client(&l->clients[i]);
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
		l.master = recv_fd(e->sock_shim);
		if (l.master < 0)
			tty_note(errno, "receive the container's terminal (its output is lost)");
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
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int status = 0, exited = 0;
	if (l.chunk == NULL) {
		tty_note(ENOMEM, "output buffer");
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
			tty_note(errno, "poll");
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
				flush_client(c);
			if (c->fd >= 0 && (rev & (POLLIN | POLLHUP | POLLERR)))
				read_client(&l, c);
		}
		if (at_listen >= 0 && (pfd[at_listen].revents & POLLIN))
			accept_client(&l);
		if (at_pid >= 0 ? (pfd[at_pid].revents & POLLIN) : waitpid(pid, &status, WNOHANG) == pid) {
			if (at_pid >= 0) {
				while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
					;
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
	remove_socket();
	close_fd(&e->listen_fd);
	int code = exit_code_of(status);
	say_goodbye(&l, code);
	if (l.input >= 0)
		close_input(&l);
	close_fd(&l.master);
	if (pidfd >= 0)
		close(pidfd);
	free(l.chunk);
	return code;
}
