/* The container's log file and its time index (logfile.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "logfile.h"

static void log_note(int err, const char *what, const char *path)
{
	char line[PATH_MAX + 256];
	int n = snprintf(line, sizeof(line), "corral-launch: %s \"%s\"%s%s\n", what, path,
			 err ? ": " : "", err ? strerror(err) : "");
	if (n > 0 && write(2, line, (size_t)n) < 0)
		return;
}

static void put_le64(unsigned char *out, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *in)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | in[i];
	return v;
}

/* A frame cut short (a shim killed in the middle of writing it) would make every frame a
 * restart appends after it unreadable: cut it off, found by the offset in its index record. */
static void cut_torn_frame(struct log_sink *log)
{
	struct stat st;
	unsigned char rec[LOG_INDEX_RECORD], hdr[8];
	if (log->index_fd < 0 || fstat(log->index_fd, &st) < 0 || st.st_size < LOG_INDEX_RECORD ||
	    pread(log->index_fd, rec, sizeof(rec), st.st_size - LOG_INDEX_RECORD) != (ssize_t)sizeof(rec))
		return;
	uint64_t last = get_le64(rec);
	if (last >= log->size)
		return; /* its frame was never written */
	ssize_t n = pread(log->fd, hdr, sizeof(hdr), (off_t)last);
	if (n == (ssize_t)sizeof(hdr)) {
		uint64_t len = (uint64_t)hdr[4] << 24 | (uint64_t)hdr[5] << 16 | (uint64_t)hdr[6] << 8 | hdr[7];
		if ((hdr[0] != 1 && hdr[0] != 2) || hdr[1] || hdr[2] || hdr[3] || last + 8 + len <= log->size)
			return; /* whole (or not a frame of ours: leave it) */
	} else if (n < 0) {
		return;
	}
	if (ftruncate(log->fd, (off_t)last) < 0) {
		log_note(errno, "cut the torn last frame of", log->path);
		return;
	}
	log_note(0, "cut a torn last frame (the shim was killed while writing it) from", log->path);
	log->size = last;
}

int log_open(struct log_sink *log, const char *path)
{
	*log = (struct log_sink){.fd = -1, .index_fd = -1, .path = path};
	if (path == NULL)
		return 0;
	char index[PATH_MAX];
	/* The index first: a reader that finds the log finds its index too. */
	if (snprintf(index, sizeof(index), "%s%s", path, LOG_INDEX_SUFFIX) >= (int)sizeof(index))
		log_note(ENAMETOOLONG, "open log index for", path);
	else if ((log->index_fd = open(index, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0)
		log_note(errno, "open log index (frames will have no time)", index);
	struct stat st;
	/* A torn last record (the machine died mid-write) would misalign every record a restart
	 * appends after it: cut it off. */
	if (log->index_fd >= 0 && fstat(log->index_fd, &st) == 0 && st.st_size % LOG_INDEX_RECORD &&
	    ftruncate(log->index_fd, st.st_size - st.st_size % LOG_INDEX_RECORD) < 0)
		log_note(errno, "cut the torn last record of the log index", index);
	log->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log->fd < 0) {
		int err = errno;
		if (log->index_fd >= 0)
			close(log->index_fd);
		log->index_fd = -1;
		errno = err;
		return -1;
	}
	log->size = fstat(log->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	cut_torn_frame(log);
	return 0;
}

/* The frame's time, appended before the frame; a failed write ends the index (the log goes on). */
static void write_index(struct log_sink *log)
{
	struct timespec now;
	unsigned char rec[LOG_INDEX_RECORD];
	clock_gettime(CLOCK_REALTIME, &now);
	put_le64(rec, log->size);
	put_le64(rec + 8, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	ssize_t n;
	while ((n = write(log->index_fd, rec, sizeof(rec))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rec)) {
		log_note(n < 0 ? errno : EIO, "write log index for (frames have no time from now on)", log->path);
		close(log->index_fd);
		log->index_fd = -1;
	}
}

void log_frame_header(unsigned char hdr[8], int stream, size_t len)
{
	const unsigned char bytes[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(len >> 24),
					(unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len};
	memcpy(hdr, bytes, sizeof(bytes));
}

void log_write_frame(struct log_sink *log, int stream, const char *data, size_t len)
{
	if (log->fd < 0 || log->failed)
		return;
	if (log->index_fd >= 0)
		write_index(log);
	unsigned char hdr[8];
	log_frame_header(hdr, stream, len);
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};
	int cnt = 2;
	struct iovec *v = iov;
	while (cnt > 0) {
		ssize_t n = writev(log->fd, v, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Keep draining the pipes so the container never blocks on a full disk. */
			log_note(errno, "write log (dropping output from now on)", log->path);
			log->failed = 1;
			return;
		}
		log->size += (uint64_t)n;
		size_t done = (size_t)n;
		while (cnt > 0 && done >= v->iov_len) {
			done -= v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + done;
			v->iov_len -= done;
		}
	}
}
