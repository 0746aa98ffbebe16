/*
 * Terminals and stdin, and the set-up of the attach socket (see tty.h for the contract; the
 * socket and its clients are attach.c, the shim's loop relay.c).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <termios.h>
#include <unistd.h>

#include "attach.h"
#include "fds.h"


#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif

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
		if ((e->listen_fd = attach_listen(o->socket_path, msg, size)) < 0)
			return -1;
	}
	return 0;
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

int console_recv_fd(int sock)
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
