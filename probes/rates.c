/* Rate limits checked in the kernel: per watched container and signal (enum rate_signal), up to
 * RATE_LEVELS limits (levels, ascending) the policy service writes (agent/probes/rate_limits.py)
 * when a container's thresholds change: one level per distinct threshold of the signal, so an
 * alert at 1000/s and a kill at 5000/s are both checked here. Per-syscall limits (the calls or
 * the errors of one syscall, up to RATE_SYSCALL_LIMITS of them per container) have the same
 * levels and windows, in syscall_rate_limits. Each limit counts in windows of RATE_WINDOW_NS
 * (1 s), each starting at the first count after the previous one ended; the first time a
 * window's count goes above a level one EVENT_RATE goes to the ring buffer (one per call that
 * crosses, naming the highest level it crossed), and the level re-arms only after a window ends
 * at or under it (or a window passes without any count): a storm gives one event per level it
 * crosses, not one per call.
 *
 * Callers (syscalls.c, network.c, compiled after this file) already hold the container's slot:
 * rate_table_of() is one array lookup and one load of `armed`; only a container with a limit
 * pays more (the window check, an atomic add, one compare with the lowest level while under
 * it). A container with per-syscall limits (RATE_PER_SYSCALL in `armed`) pays one more array
 * lookup and a byte load per syscall, and the window check only on the syscalls it limits; one
 * without pays a bit test. Counting is shared between CPUs (a per-CPU count could not be
 * compared with a level), and the window roll-over is not atomic: two CPUs crossing the
 * boundary at once may lose a few counts of the new window. That is the precision of a
 * threshold, not of a counter (the counters stay in syscall_counts etc.).
 *
 * Exports: rate_limits         ARRAY[slot] = struct rate_table
 *          syscall_rate_limits ARRAY[slot] = struct syscall_rate_table
 *          events ring buffer: struct rate_event
 */
#include "common.h"

BPF_ARRAY(rate_limits, struct rate_table, MAX_CONTAINERS);
BPF_ARRAY(syscall_rate_limits, struct syscall_rate_table, MAX_CONTAINERS);

/* The container's rate table, or 0 when it has no limit (the common case). */
static __always_inline struct rate_table *rate_table_of(int slot)
{
    __u32 index = slot;
    struct rate_table *table = rate_limits.lookup(&index);
    if (!table || !table->armed)
        return 0;
    return table;
}

/* One rate_event: `signal` (of syscall `nr`) went above `level` in the current window. */
static __always_inline void rate_report(__u32 generation, __u32 signal, __u32 nr, __u64 level, __u64 count,
                                        __u64 now, __u64 cgroup_id, int in_task)
{
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
    event->limit = level;
    event->signal = signal;
    event->generation = generation;
    event->nr = nr;
    event->pad = 0;
    if (in_task) {
        event->pid = bpf_get_current_pid_tgid() >> 32;
        bpf_get_current_comm(event->comm, sizeof(event->comm));
    } else {
        event->pid = 0;
        __builtin_memset(event->comm, 0, sizeof(event->comm));
    }
    events.ringbuf_submit(event, 0);
}

/* Count `n` in one limit's window and report a level crossed. */
static __always_inline void rate_count(struct rate_limit *rate, __u32 generation, __u32 signal, __u32 nr,
                                       __u64 n, __u64 cgroup_id, int in_task)
{
    __u64 now = bpf_ktime_get_ns();
    if (now >= rate->window_end) {
        /* The window ended (a new one starts with this count: no division on this path). Re-arm
         * each level the ended window stayed at or under, and every level when a whole window
         * passed without a count. */
        __u64 ended = now >= rate->window_end + RATE_WINDOW_NS ? 0 : rate->count;
#pragma unroll
        for (int i = 0; i < RATE_LEVELS; i++) {
            if (ended <= rate->levels[i])
                rate->reported[i] = 0;
        }
        rate->window_end = now + RATE_WINDOW_NS;
        rate->count = 0;
    }
    __u64 count = __sync_fetch_and_add(&rate->count, n) + n;
    /* One report per call, for the highest level it crossed first: a call adding one (a
     * syscall) crosses one level at most; a packet may cross several, and the daemon advances
     * every rule the count is above (agent/policy/kernel_rates.py). Levels ascend. */
    __u64 crossed = 0;
    int any = 0;
#pragma unroll
    for (int i = 0; i < RATE_LEVELS; i++) {
        __u64 level = rate->levels[i];
        if (count <= level)
            break;                  /* none above this one is crossed either */
        if (rate->reported[i] || __sync_fetch_and_add(&rate->reported[i], 1) != 0)
            continue;               /* reported already (in this window or by another CPU) */
        crossed = level;
        any = 1;
    }
    if (any)
        rate_report(generation, signal, nr, crossed, count, now, cgroup_id, in_task);
}

/* Count `n` against a container-wide signal's levels (`signal` is a constant at every call
 * site). `in_task`: the current task is the container's (not softirq), so its pid and comm name
 * the event. */
static __always_inline void rate_add(struct rate_table *table, __u32 signal, __u64 n, __u64 cgroup_id,
                                     int in_task)
{
    if (signal >= N_RATE_SIGNALS || !(table->armed & (1u << signal)))
        return;
    rate_count(&table->limits[signal], table->generation, signal, RATE_ALL_SYSCALLS, n, cgroup_id, in_task);
}

#if (RATE_SYSCALL_LIMITS & (RATE_SYSCALL_LIMITS - 1)) != 0
#error "RATE_SYSCALL_LIMITS must be a power of two (the entry index is masked for the verifier)"
#endif

/* The limit a calls[]/errors[] byte names, or 0. The mask is what the verifier can follow: a
 * compare alone is lost when clang widens (entry - 1) to compute the offset. */
static __always_inline struct rate_limit *syscall_limit(struct syscall_rate_table *rates, __u32 entry)
{
    if (entry == 0 || entry > RATE_SYSCALL_LIMITS)
        return 0;
    return &rates->limits[(entry - 1) & (RATE_SYSCALL_LIMITS - 1)];
}

/* The per-syscall limits of the call just made: only for a container that has some. */
static __always_inline void rate_add_syscall(struct rate_table *table, int slot, __u32 nr, int failed,
                                             __u64 cgroup_id)
{
    if (!(table->armed & RATE_PER_SYSCALL) || nr >= NR_SYSCALLS)
        return;
    __u32 index = slot;
    struct syscall_rate_table *rates = syscall_rate_limits.lookup(&index);
    if (!rates)
        return;
    struct rate_limit *rate = syscall_limit(rates, rates->calls[nr]);
    if (rate)
        rate_count(rate, table->generation, RATE_SYSCALLS, nr, 1, cgroup_id, 1);
    if (!failed)
        return;
    rate = syscall_limit(rates, rates->errors[nr]);
    if (rate)
        rate_count(rate, table->generation, RATE_SYSCALL_ERRORS, nr, 1, cgroup_id, 1);
}
