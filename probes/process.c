/* Process activity per container: execs, forks and exits, and one event per exec.
 *
 * sched:sched_process_fork runs in the parent, sched_process_exec and sched_process_exit in
 * the task itself, so the current cgroup id names the container. fork and exit are counted
 * per task (a new thread is a fork, each thread's end an exit), as the tracepoints fire.
 *
 * Each program first runs launcher.c's bookkeeping for every task (one program per
 * tracepoint: BCC keeps one attachment per tracepoint name, so a second program there would
 * not be detached at close).
 *
 * Exports: process_counters PERCPU_ARRAY[slot] = {execs, forks, exits}
 *          events ring buffer: struct exec_event (filename as passed to execve, truncated)
 */
#include "common.h"

/* From /sys/kernel/tracing/events/sched/sched_process_exec/format. */
struct sched_process_exec_args {
    __u64 common;
    __u32 filename_loc;             /* offset 8: __data_loc char[] filename */
    int pid;                        /* 12 */
    int old_pid;                    /* 16 */
};

BPF_PERCPU_ARRAY(process_counters, struct process_counters, MAX_CONTAINERS);

static __always_inline struct process_counters *counters_of(int slot, __u32 probe)
{
    __u32 index = slot;
    struct process_counters *counters = process_counters.lookup(&index);
    if (!counters)
        count_error(probe);
    return counters;
}

int corral_process_exec(struct sched_process_exec_args *ctx)
{
    launcher_exec((struct launcher_exec_args *)ctx);   /* every task: launcher.c */
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    int slot = watched_slot(cgroup_id);
    if (slot < 0)
        return 0;
    struct process_counters *counters = counters_of(slot, ERR_PROCESS_EXEC);
    if (counters)
        counters->execs += 1;
    struct exec_event *event = events.ringbuf_reserve(sizeof(struct exec_event));
    if (!event) {
        count_error(ERR_PROCESS_EXEC);
        count_lost_event();
        return 0;
    }
    event->type = EVENT_EXEC;
    event->pid = ctx->pid;
    event->cgroup_id = cgroup_id;
    event->time_ns = bpf_ktime_get_ns();
    read_data_loc_str(event->filename, sizeof(event->filename), ctx, ctx->filename_loc);
    events.ringbuf_submit(event, 0);
    return 0;
}

int corral_process_fork(void *ctx)
{
    launcher_fork((struct sched_process_fork_args *)ctx);   /* every task: launcher.c */
    int slot = watched_slot(bpf_get_current_cgroup_id());
    if (slot < 0)
        return 0;
    struct process_counters *counters = counters_of(slot, ERR_PROCESS_FORK);
    if (counters)
        counters->forks += 1;
    return 0;
}

int corral_process_exit(void *ctx)
{
    launcher_exit();                                    /* every task: launcher.c */
    int slot = watched_slot(bpf_get_current_cgroup_id());
    if (slot < 0)
        return 0;
    struct process_counters *counters = counters_of(slot, ERR_PROCESS_EXIT);
    if (counters)
        counters->exits += 1;
    return 0;
}
