/* Shared definitions of Corral's probes: the watched-cgroup filter, the error counters and
 * the event ring buffer.
 *
 * Every program first asks watched_slot(cgroup id): processes outside the containers Corral
 * watches stop there, after one helper call and one inlined ARRAY lookup. A watched container
 * owns a slot number (0..MAX_CONTAINERS-1) that indexes the per-CPU counter arrays, so counting
 * needs no hash lookup and no atomic instruction.
 *
 * Only tracepoint arguments, helpers and UAPI context structs are read: kernel struct layouts
 * from the installed headers do not match the running kernel.
 *
 * The struct definitions are also compiled by plain gcc (with -DCORRAL_STRUCTS_ONLY) in
 * tests/unit/test_probe_structs.py, which checks agent/probes/structs.py against them.
 */
#ifndef CORRAL_COMMON_H
#define CORRAL_COMMON_H

/* Parameters, overridden by the loader with -D flags. */
#ifndef MAX_CONTAINERS
#define MAX_CONTAINERS 128          /* slots: containers counted at once */
#endif
#ifndef WATCH_INDEX_SIZE
#define WATCH_INDEX_SIZE 1024       /* power of two: cgroup id & (size-1) indexes watch_index */
#endif
#ifndef NR_SYSCALLS
#define NR_SYSCALLS 512             /* syscall numbers 0..NR_SYSCALLS-2; the last one is "other" */
#endif
#ifndef LATENCY_BUCKETS
#define LATENCY_BUCKETS 32          /* log2(ns) buckets: 2^31 ns ~ 2 s and beyond in the last */
#endif
#ifndef MAX_THREADS
#define MAX_THREADS 16384           /* threads of watched containers inside a syscall at once */
#endif
#ifndef MAX_TCP_SOCKETS
#define MAX_TCP_SOCKETS 16384       /* TCP sockets of watched containers open at once */
#endif
#ifndef MAX_DESTINATIONS
#define MAX_DESTINATIONS 16384      /* (container, TCP destination) pairs remembered at once */
#endif
#ifndef EXEC_FILENAME_LEN
#define EXEC_FILENAME_LEN 256
#endif
#ifndef EVENT_RING_PAGES
#define EVENT_RING_PAGES 16         /* ring buffer size in pages (power of two) */
#endif
#ifndef EGRESS_MAX_RULES
#define EGRESS_MAX_RULES 64         /* egress rule entries per container (a rule with N ports is N) */
#endif
#ifndef EGRESS_MAX_POLICIES
#define EGRESS_MAX_POLICIES 16      /* policies with egress rules selecting one container */
#endif
#ifndef RATE_LEVELS
#define RATE_LEVELS 8               /* thresholds per container and rate signal checked in the kernel */
#endif
#ifndef RATE_SYSCALL_LIMITS
#define RATE_SYSCALL_LIMITS 16      /* (syscall, calls|errors) rates per container checked in the kernel */
#endif
#ifndef RATE_WINDOW_NS
#define RATE_WINDOW_NS 1000000000ULL  /* rate limits count per window of this length (1 s) */
#endif
#ifndef EGRESS_MAX_DEPTH
#define EGRESS_MAX_DEPTH 16         /* cgroup levels searched for the container of a sub-cgroup */
#endif

#define SYSCALL_OTHER (NR_SYSCALLS - 1)   /* compat (32-bit) and out-of-range numbers */

/* Index of each probe's error counter in probe_errors; agent/probes/structs.py PROBE_ERRORS
 * lists the same names in the same order (a unit test checks). */
enum probe_error {
    ERR_SYSCALLS = 0,
    ERR_SYSCALL_LATENCY = 1,
    ERR_OOM = 2,
    ERR_NETWORK = 3,
    ERR_TCP_CONNECT = 4,
    ERR_TCP_RETRANSMIT = 5,
    ERR_PROCESS_EXEC = 6,
    ERR_PROCESS_FORK = 7,
    ERR_PROCESS_EXIT = 8,
    ERR_SYSCALL_KILL = 9,
    ERR_EGRESS = 10,
    ERR_RATE_LIMITS = 11,
    N_PROBE_ERRORS = 12,
};

/* Why an event did not fit in the ring buffer: index of event_loss. agent/probes/structs.py
 * LOST_REASONS lists the same names in the same order. */
enum lost_reason {
    LOST_RING_FULL = 0,             /* the daemon reads, but not fast enough */
    LOST_DAEMON_DOWN = 1,           /* nobody read for CONSUMER_GONE_NS: the daemon is down */
    N_LOST_REASONS = 2,
};

/* The daemon writes the time of its last ring poll into `consumer` every half second or so;
 * a reader silent for longer than this is gone (killed, or stopped with enforcement pinned). */
#define CONSUMER_GONE_NS 2000000000ULL

enum event_type {
    EVENT_OOM = 1,
    EVENT_EXEC = 2,
    EVENT_KILL = 3,
    EVENT_EGRESS = 4,
    EVENT_RATE = 5,
};

/* The signals rate limits are checked on (probes/rates.c); agent/probes/structs.py
 * RATE_SIGNALS lists the same names in the same order. */
enum rate_signal {
    RATE_SYSCALLS = 0,              /* syscalls.c, per call */
    RATE_SYSCALL_ERRORS = 1,        /* syscalls.c, per call returning -4095..-1 */
    RATE_TCP_CONNECTS = 2,          /* network.c, per active open */
    RATE_NET_TX_BYTES = 3,          /* network.c, skb->len leaving */
    RATE_NET_RX_BYTES = 4,          /* network.c, skb->len entering */
    N_RATE_SIGNALS = 5,
};

/* Bit N_RATE_SIGNALS of rate_table.armed: the container has per-syscall limits in
 * syscall_rate_limits; rate_event.nr of a container-wide signal. */
#define RATE_PER_SYSCALL (1u << N_RATE_SIGNALS)
#define RATE_ALL_SYSCALLS 0xFFFFFFFFu

/* Value of watch_index: the full cgroup id stored at (id & mask), and its slot. */
struct watch_entry {
    __u64 cgroup_id;                /* 0: free */
    __u32 slot;
    __u32 pad;
};

struct syscall_count {
    __u64 calls;
    __u64 errors;                   /* return value in -4095..-1 */
};

struct latency_key {
    __u64 cgroup_id;
    __u32 nr;
    __u32 pad;
};

struct latency_hist {
    __u64 buckets[LATENCY_BUCKETS]; /* bucket b: latency in [2^b, 2^(b+1)) ns; 0 also in 0 */
};

struct net_counters {
    __u64 rx_bytes;
    __u64 rx_packets;
    __u64 tx_bytes;
    __u64 tx_packets;
};

struct tcp_counters {
    __u64 connects;
    __u64 retransmits;
};

/* tcp_destinations' key (probes/network.c): one destination a container connected to. */
struct tcp_destination {
    __u64 cgroup_id;
    __u16 family;                   /* AF_INET or AF_INET6 */
    __u16 port;                     /* host byte order, as the tracepoint gives it */
    __u32 pad;
    __u8 addr[16];                  /* IPv4: the first 4 bytes */
};

struct process_counters {
    __u64 execs;
    __u64 forks;
    __u64 exits;
};

/* Events share a header so user space can tell them apart by the first field. */
struct oom_event {
    __u32 type;                     /* EVENT_OOM */
    __u32 pid;
    __u64 cgroup_id;
    __u64 time_ns;                  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    char comm[16];
};

struct exec_event {
    __u32 type;                     /* EVENT_EXEC */
    __u32 pid;
    __u64 cgroup_id;
    __u64 time_ns;
    char filename[EXEC_FILENAME_LEN];
};

/* Syscall kill rules of one container (enforce.c): kill_tables ARRAY[slot]. `armed` is 0 for a
 * container without kill rules, so its syscalls pay one array lookup and one load. */
struct kill_table {
    __u32 armed;                    /* 1: some signal[] is set */
    __u32 pad;
    __u8 signal[NR_SYSCALLS];       /* signal to send the caller of syscall nr; 0: none */
};

struct kill_event {
    __u32 type;                     /* EVENT_KILL */
    __u32 pid;                      /* tgid: the process the signal went to */
    __u64 cgroup_id;
    __u64 time_ns;
    __u32 nr;                       /* the syscall */
    __u32 signal;
    __s32 result;                   /* bpf_send_signal(): 0 sent, else -errno */
    __u32 pad;
    char comm[16];
};

/* One signal's limits in a container's rate_table: up to RATE_LEVELS levels (ascending; unused
 * ones are ~0), counted in one window. Each level is reported once when the window's count goes
 * above it, and again only after a window that ended at or under it (or an empty one). */
struct rate_limit {
    __u64 window_end;               /* bpf_ktime_get_ns() at which the window counted ends */
    __u64 count;                    /* calls (bytes, connects) in the window so far */
    __u64 levels[RATE_LEVELS];      /* report when the window's count goes above each */
    __u64 reported[RATE_LEVELS];    /* per level: 0 armed; else the crossing was reported (a ticket) */
};

/* Rate limits of one container (rates.c): rate_limits ARRAY[slot]. `armed` is 0 for a
 * container without any, so its syscalls pay one array lookup and one load. */
struct rate_table {
    __u32 armed;                    /* bit s: signal s (enum rate_signal) has a limit; RATE_PER_SYSCALL */
    __u32 generation;               /* changes with every update; events carry it */
    struct rate_limit limits[N_RATE_SIGNALS];
};

/* Per-syscall rate limits of one container (rates.c): syscall_rate_limits ARRAY[slot], read only
 * when its rate_table has RATE_PER_SYSCALL. calls[nr] (errors[nr]) is 1 + the index in limits[]
 * counting the calls (errors) of syscall nr, 0 for a syscall without a limit. */
struct syscall_rate_table {
    __u8 calls[NR_SYSCALLS];
    __u8 errors[NR_SYSCALLS];
    struct rate_limit limits[RATE_SYSCALL_LIMITS];
};

struct rate_event {
    __u32 type;                     /* EVENT_RATE */
    __u32 pid;                      /* the task that crossed; 0 for bytes (counted in softirq) */
    __u64 cgroup_id;
    __u64 time_ns;
    __u64 count;                    /* in the window, at the crossing */
    __u64 limit;                    /* the level crossed */
    __u32 signal;                   /* enum rate_signal */
    __u32 generation;
    __u32 nr;                       /* the syscall of a per-syscall limit; RATE_ALL_SYSCALLS otherwise */
    __u32 pad;
    char comm[16];                  /* empty with pid 0 */
};

/* One egress rule entry. A policy's rule with several ports is several consecutive entries
 * with the same action: first-match semantics stay the same. */
struct egress_rule {
    __u32 addr[4];                  /* network byte order; IPv4 in addr[0] */
    __u32 mask[4];                  /* network byte order */
    __u16 port;                     /* destination port, host byte order; 0: every port */
    __u8 protocol;                  /* IPPROTO_TCP 6, IPPROTO_UDP 17; 0: both */
    __u8 family;                    /* 4 or 6: an IPv4 rule never matches an IPv6 address */
    __u8 action;                    /* EGRESS_ALLOW 0, EGRESS_DENY 1 */
    __u8 policy;                    /* index of the policy the rule belongs to */
    __u16 rule;                     /* index of the rule in its policy (for the report) */
};

/* The egress rules of one container: egress_tables ARRAY[slot]. Each policy decides alone (its
 * first matching entry, else its default); a connection is refused when an enforcing policy
 * denies it. Audit policies are evaluated too, and only reported. */
struct egress_table {
    __u32 count;                    /* entries in use; the programs scan all (family 0: unused) */
    __u32 deny_default;             /* bit p: policy p's default is deny */
    __u32 audit;                    /* bit p: policy p is in audit mode: reports, never refuses */
    __u32 generation;               /* changes with every update; events carry it */
    struct egress_rule rules[EGRESS_MAX_RULES];
};

struct egress_event {
    __u32 type;                     /* EVENT_EGRESS */
    __u32 pid;
    __u64 cgroup_id;                /* the watched container (an ancestor of a sub-cgroup) */
    __u64 time_ns;
    __u32 addr[4];                  /* destination, network byte order; IPv4 in addr[0] */
    __u16 port;                     /* host byte order */
    __u8 protocol;
    __u8 family;
    __u8 blocked;                   /* 1: refused (EPERM); 0: an audit policy would have */
    __u8 policy;
    __u16 rule;                     /* index in the policy, EGRESS_DEFAULT_RULE: its default */
    __u32 generation;
    __u32 pad;
    char comm[16];
};

#define EGRESS_ALLOW 0
#define EGRESS_DENY 1
#define EGRESS_DEFAULT_RULE 0xFFFF

#ifndef CORRAL_STRUCTS_ONLY

BPF_ARRAY(watch_index, struct watch_entry, WATCH_INDEX_SIZE);
/* Ids whose watch_index cell is taken by another id. The loader keeps this invariant: an id is
 * here only if its cell holds a different id, so an empty cell means "not watched" at once. */
BPF_HASH(watch_overflow, __u64, __u32, MAX_CONTAINERS);
BPF_PERCPU_ARRAY(probe_errors, __u64, N_PROBE_ERRORS);
BPF_RINGBUF_OUTPUT(events, EVENT_RING_PAGES);
/* Events that found the ring buffer full, by lost_reason; consumer[0] is the daemon's last
 * poll (bpf_ktime_get_ns clock). Both are pinned with the enforcing programs (agent/probes/
 * pins.py), so the next daemon reads what was lost while none ran. */
BPF_PERCPU_ARRAY(event_loss, __u64, N_LOST_REASONS);
BPF_ARRAY(consumer, __u64, 1);

/* The slot of a watched cgroup, or -1. */
static __always_inline int watched_slot(__u64 cgroup_id)
{
    __u32 index = cgroup_id & (WATCH_INDEX_SIZE - 1);
    struct watch_entry *entry = watch_index.lookup(&index);
    if (!entry || entry->cgroup_id == 0)
        return -1;
    if (entry->cgroup_id == cgroup_id)
        return entry->slot < MAX_CONTAINERS ? (int)entry->slot : -1;
    __u32 *slot = watch_overflow.lookup(&cgroup_id);
    if (!slot || *slot >= MAX_CONTAINERS)
        return -1;
    return *slot;
}

static __always_inline void count_error(__u32 probe)
{
    __u64 *count = probe_errors.lookup(&probe);
    if (count)
        *count += 1;
}

/* An event that did not fit in the ring buffer: counted by why. */
static __always_inline void count_lost_event(void)
{
    __u32 zero = 0, reason = LOST_RING_FULL;
    __u64 *seen = consumer.lookup(&zero);
    if (!seen || bpf_ktime_get_ns() - *seen > CONSUMER_GONE_NS)
        reason = LOST_DAEMON_DOWN;
    __u64 *count = event_loss.lookup(&reason);
    if (count)
        *count += 1;
}

/* The NUL-terminated string of a __data_loc field: low 16 bits are its offset in the record. */
static __always_inline void read_data_loc_str(char *dst, __u32 size, void *record, __u32 loc)
{
    bpf_probe_read_kernel_str(dst, size, (char *)record + (loc & 0xFFFF));
}

#endif /* CORRAL_STRUCTS_ONLY */
#endif /* CORRAL_COMMON_H */
