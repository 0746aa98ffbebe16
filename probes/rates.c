/* Rate limits checked in the kernel: per watched container and signal (enum rate_signal), a
 * limit the policy service writes (agent/probes/rate_limits.py) when a container's thresholds
 * change. Each signal counts in windows of RATE_WINDOW_NS (1 s), each starting at the first
 * count after the previous one ended; the first time a window's count goes above the limit one
 * EVENT_RATE goes to the ring buffer, and the report re-arms only after a window ends at or
 * under the limit (or a window passes without any): a storm gives one event, not one per call.
 *
 * Callers (syscalls.c, network.c, compiled after this file) already hold the container's slot:
 * rate_table_of() is one array lookup and one load of `armed`; only a container with a limit
 * pays more (the window check, an atomic add). Counting is shared between CPUs (a per-CPU
 * count could not be compared with the limit), and the window roll-over is not atomic: two
 * CPUs crossing the boundary at once may lose a few counts of the new window. That is the
 * precision of a threshold, not of a counter (the counters stay in syscall_counts etc.).
 *
 * Exports: rate_limits ARRAY[slot] = struct rate_table
 *          events ring buffer: struct rate_event
 */
#include "common.h"

BPF_ARRAY(rate_limits, struct rate_table, MAX_CONTAINERS);

/* The container's rate table, or 0 when it has no limit (the common case). */
static __always_inline struct rate_table *rate_table_of(int slot)
{
    __u32 index = slot;
    struct rate_table *table = rate_limits.lookup(&index);
    if (!table || !table->armed)
        return 0;
    return table;
}

/* Count `n` against `signal`'s limit (a constant at every call site). `in_task`: the current
 * task is the container's (not softirq), so its pid and comm name the event. */
static __always_inline void rate_add(struct rate_table *table, __u32 signal, __u64 n, __u64 cgroup_id,
                                     int in_task)
{
    if (signal >= N_RATE_SIGNALS || !(table->armed & (1u << signal)))
        return;
    struct rate_limit *rate = &table->limits[signal];
    __u64 now = bpf_ktime_get_ns();
    if (now >= rate->window_end) {
        /* The window ended (a new one starts with this count: no division on this path). Re-arm
         * when it stayed at or under the limit, or when a whole window passed without a count. */
        if (rate->count <= rate->limit || now >= rate->window_end + RATE_WINDOW_NS)
            rate->reported = 0;
        rate->window_end = now + RATE_WINDOW_NS;
        rate->count = 0;
    }
    __u64 count = __sync_fetch_and_add(&rate->count, n) + n;
    if (count <= rate->limit || rate->reported)
        return;
    if (__sync_fetch_and_add(&rate->reported, 1) != 0)
        return;                     /* another CPU reported this crossing */
    struct rate_event *event = events.ringbuf_reserve(sizeof(struct rate_event));
    if (!event) {
        count_error(ERR_RATE_LIMITS);   /* the report is lost; the periodic evaluation sees it */
        count_lost_event();
        return;
    }
    event->type = EVENT_RATE;
    event->cgroup_id = cgroup_id;
    event->time_ns = now;
    event->count = count;
    event->limit = rate->limit;
    event->signal = signal;
    event->generation = table->generation;
    if (in_task) {
        event->pid = bpf_get_current_pid_tgid() >> 32;
        bpf_get_current_comm(event->comm, sizeof(event->comm));
    } else {
        event->pid = 0;
        __builtin_memset(event->comm, 0, sizeof(event->comm));
    }
    events.ringbuf_submit(event, 0);
}
