/* The container's log: Docker stream frames in FILE, and a time for each frame in FILE.idx.
 *
 * Why a side index and not a timestamped frame: the log stays byte for byte what it always
 * was (Docker's frames, which the daemon and the attach relay send unchanged, and whose size
 * the attach HELLO reports), so logs written by an older shim read as before, with no time.
 *
 * FILE.idx holds one 16-byte record per frame: the frame's offset in FILE, then the time the
 * shim read its bytes in UNIX nanoseconds (CLOCK_REALTIME), both uint64 little-endian. The
 * record is appended just BEFORE its frame, so a reader that sees a frame finds its time; a
 * shim killed between the two leaves a record pointing at the log's end, which the next frame
 * written there (a restart appends to the same files) overrides. Nothing is fsynced: a torn
 * last record (a crash of the machine) is a short tail the reader ignores. A restart's shim
 * cuts such a record, and a frame cut short by a kill (found by the last record's offset),
 * before it appends, so what follows them stays readable. */
#ifndef CORRAL_LOGFILE_H
#define CORRAL_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#define LOG_INDEX_SUFFIX ".idx"
#define LOG_INDEX_RECORD 16

struct log_sink {
	int fd;          /* -1: no log, output is dropped */
	int index_fd;    /* -1: no index (it could not be opened or written): frames have no time */
	const char *path;
	uint64_t size;   /* the log's size: the offset of the next frame */
	int failed;      /* reported once */
};

/* Open (append, create) PATH and PATH.idx; 0, or -1 with errno set when the log itself fails
 * (an index that cannot be opened is reported on fd 2 and left out). */
int log_open(struct log_sink *log, const char *path);

/* The 8-byte header of a Docker stream frame: [stream,0,0,0,len BE32]. The attach socket's
 * frames (tty.h) have the same. */
void log_frame_header(unsigned char hdr[8], int stream, size_t len);

/* Append one frame [stream,0,0,0,len BE32] payload, after its index record. A failed write is
 * reported once on fd 2 and the output dropped from then on: a full disk never blocks the
 * container. */
void log_write_frame(struct log_sink *log, int stream, const char *data, size_t len);

#endif
