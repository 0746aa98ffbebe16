/*
 * Terminals, stdin and the attach socket of a container (docs/ARCHITECTURE.md, "The launcher",
 * "Terminals and attach").
 *
 * With --tty the container's init gets a pseudo-terminal allocated in the container's own
 * devpts; the shim keeps its master, so the terminal outlives the daemon and every client.
 * With --stdin the init's stdin is a pipe whose writing end the shim keeps. With
 * --attach-socket the shim listens on a UNIX socket (mode 0600) through which the daemon
 * attaches: it reads the output as it comes and writes stdin, end-of-stdin and window sizes.
 *
 * On that socket every message is a frame like the log's: [type, 0, 0, 0, length (BE32)], then
 * the payload (at most ATTACH_FRAME_MAX bytes).
 *   shim -> daemon: HELLO (first; the log's size in bytes as BE64, then a flags byte, 1 = tty),
 *                   STDOUT/STDERR (output), EXIT (the exit code in ASCII; the last frame).
 *   daemon -> shim: STDIN (bytes for the container's stdin), STDIN_EOF (close it: the
 *                   container reads end-of-file; ignored with a terminal), RESIZE (rows and
 *                   columns, BE16 each).
 *
 * Three files implement it: tty.c the terminal, the stdin pipe and the set-up before and after
 * the clone; attach.c the socket and its clients' frame queues; relay.c the shim's loop.
 */
#ifndef CORRAL_TTY_H
#define CORRAL_TTY_H

#include <stddef.h>
#include <sys/types.h>

enum attach_frame {
	ATTACH_STDIN = 0,
	ATTACH_STDOUT = 1,
	ATTACH_STDERR = 2,
	ATTACH_EXIT = 3,
	ATTACH_STDIN_EOF = 4,
	ATTACH_RESIZE = 5,
	ATTACH_HELLO = 6,
};

#define ATTACH_FRAME_MAX 65536

/* The run options of this concern. */
struct console_opts {
	int tty;                    /* --tty */
	int open_stdin;             /* --stdin */
	const char *socket_path;    /* --attach-socket PATH */
	unsigned short rows, cols;  /* --tty-size ROWS,COLS (0: the kernel's default, 0x0) */
};

/* The fds set up before the clone: the init's ends and the shim's. -1 when unused. */
struct console_ends {
	int stdin_r, stdin_w;       /* --stdin: the init reads, the shim writes */
	int sock_init, sock_shim;   /* --tty: the init sends the terminal's master over this pair */
	int listen_fd;              /* --attach-socket */
};

/* Parse "ROWS,COLS"; 0 or -1. */
int console_parse_size(const char *text, struct console_opts *o);

/* In the shim before the clone: pipes, socket pair and the listening socket. On failure, -1
 * and the reason in msg; nothing is left open or bound. */
int console_prepare(const struct console_opts *o, struct console_ends *e, char *msg, size_t size);

/* In the init right after the clone: close the shim's ends. */
void console_init_side(struct console_ends *e);

/* In the shim right after the clone: close the init's ends. */
void console_shim_side(struct console_ends *e);

/* In the init after pivot_root, before dropping privileges: allocate the terminal in the
 * container's /dev/pts, make it the controlling terminal and fds 0-2 (owned by uid when it is
 * not -1), and hand the master to the shim. Returns NULL or the failed step (errno set). */
const char *console_take(const struct console_opts *o, struct console_ends *e, int uid);

/* After joining the container's mount namespace: allocate a terminal in its /dev/pts (both
 * ends CLOEXEC). NULL or the failed step (errno set). */
const char *console_open(int *master, int *slave);

/* In a process with its own session: slave becomes its controlling terminal and fds 0-2,
 * owned by uid when it is not -1. NULL or the failed step. */
const char *console_become(int slave, int uid, unsigned short rows, unsigned short cols);

/* Send fd over a UNIX socket (SCM_RIGHTS) with one byte; 0 or -1. */
int console_send_fd(int sock, int fd);

/* Receive the fd console_send_fd sent, without waiting (it was sent before the exec the shim
 * waited for); the fd (CLOEXEC), or -1 with errno set. */
int console_recv_fd(int sock);

/* Where the shim's output goes besides the attached clients: the log. */
typedef void (*console_log_fn)(void *ctx, int stream, const char *data, size_t len);

struct console_pump {
	const struct console_opts *opts;
	struct console_ends *ends;
	int out_r, err_r;           /* the init's stdout and stderr (no terminal) */
	int log_fd;                 /* for the log's size in HELLO; -1 without a log */
	console_log_fn log;
	void *log_ctx;
};

/* The shim's loop once the init runs: output to the log and the clients, clients' input to
 * the container, until the init has exited and the output is drained. Returns the exit code
 * (the exit status, or 128+signal); removes the socket file. */
int console_pump_until_exit(pid_t pid, struct console_pump *p);

#endif
