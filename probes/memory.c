/* OOM kills per container, and one event per victim.
 *
 * oom:mark_victim fires when the OOM killer picks a victim, in the context of the task whose
 * allocation failed; for a memory cgroup OOM that task is in the same container as the victim,
 * so its cgroup id names the container.
 *
 * Exports: oom_kills PERCPU_ARRAY[slot] = kills;  events ring buffer: struct oom_event
 */
#include "common.h"

/* From /sys/kernel/tracing/events/oom/mark_victim/format (only the fields read). */
struct mark_victim_args {
    __u64 common;
    int pid;                        /* offset 8 */
    __u32 comm_loc;                 /* offset 12: __data_loc char[] comm */
};

BPF_PERCPU_ARRAY(oom_kills, __u64, MAX_CONTAINERS);

int corral_mark_victim(struct mark_victim_args *ctx)
{
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    int slot = watched_slot(cgroup_id);
    if (slot < 0)
        return 0;
    __u32 index = slot;
    __u64 *kills = oom_kills.lookup(&index);
    if (kills)
        *kills += 1;
    struct oom_event *event = events.ringbuf_reserve(sizeof(struct oom_event));
    if (!event) {
        count_error(ERR_OOM);       /* ring buffer full: the event is lost, the count is not */
        count_lost_event();
        return 0;
    }
    event->type = EVENT_OOM;
    event->pid = ctx->pid;
    event->cgroup_id = cgroup_id;
    event->time_ns = bpf_ktime_get_ns();
    read_data_loc_str(event->comm, sizeof(event->comm), ctx, ctx->comm_loc);
    events.ringbuf_submit(event, 0);
    return 0;
}
