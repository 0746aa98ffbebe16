/* The shim's attach socket and its clients (tty.h has the protocol): the listening socket,
 * bound through its directory's fd and removed whenever the shim ends, and each client's queue
 * of frames to send. The shim never blocks on a client: one too far behind is dropped (the log
 * keeps everything), and at exit the last frames get FLUSH_MS at most. Private to tty.c and
 * relay.c. */
#ifndef CORRAL_ATTACH_H
#define CORRAL_ATTACH_H

#include <stddef.h>

#define MAX_CLIENTS 16
#define CLIENT_OUT_MAX (4 << 20) /* a client this far behind is dropped; the log has it all */

struct client {
	int fd; /* -1: free slot */
	/* It reads no more (a send failed: it closed, or shut its reading side): nothing is queued
	 * for it any more, but what it sent before is still read and handled, up to its end. The
	 * daemon sends a RESIZE and closes at once: dropping it at the failed send of the next
	 * output would lose that size (the shell's redraw after the previous resize is such
	 * output). */
	int deaf;
	char *out;
	size_t out_len, out_cap;
	unsigned char *in; /* one frame from the daemon, being read */
	size_t in_len;
};

/* Listen on path (mode 0600), removed at exit from then on. The fd (CLOEXEC, non-blocking), or
 * -1 with the reason in msg (nothing left bound). */
int attach_listen(const char *path, char *msg, size_t size);

/* Remove the socket file now (nobody may attach any more); later calls do nothing. */
void attach_remove_socket(void);

/* Close c and free its buffers; its slot is free again. */
void client_drop(struct client *c);

/* Send what is queued for c without blocking; a client that went away becomes deaf (its
 * input is still read until its end, where it is dropped). */
void client_flush(struct client *c);

/* Queue the frame [type,0,0,0,len BE32] data for c and send what it can take now. */
void client_queue_frame(struct client *c, int type, const void *data, size_t len);

/* Accept one client into a free slot of clients (MAX_CLIENTS) and queue its HELLO: the log's
 * size now (log_fd; 0 without a log) and whether there is a terminal. Full: it is closed. */
void client_accept(struct client *clients, int listen_fd, int log_fd, int tty);

/* At exit: the last output and the exit code to every client, for at most FLUSH_MS; then
 * every client is dropped. */
void clients_goodbye(struct client *clients, int code);

#endif
