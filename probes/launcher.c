/* The launcher's set-up is not the container's: which tasks of a watched container are still
 * corral-launch preparing it, so the syscall counters and kill rules (syscalls.c, enforce.c)
 * skip them until the container's command runs.
 *
 * The launcher places a container's init in its cgroups (born in the cgroup2 one) BEFORE it sets it up
 * (unshare, mount, pivot_root, sethostname, capset, prctl, seccomp, execve), and `corral exec`
 * joins the cgroup before it drops capabilities and execs; policy rules and counters are about
 * the container's own program, from the exec of its command on. So, per task (thread id):
 *
 *   launcher_tasks  a task that exec'd the launcher binary (ProbeOptions.launcher, set in
 *                   launcher_config) from OUTSIDE every watched container (its cgroup and each
 *                   ancestor) and in the daemon's pid namespace. A container process exec'ing
 *                   a look-alike file is in a watched cgroup or in another pid namespace, so it
 *                   never qualifies; nothing here trusts comm, which any process can set.
 *   setup_tasks     a task forked by a launcher task or by a set-up task: SETUP_RUNNING until
 *                   it execs (the container's command), then SETUP_EXECED until the sys_exit
 *                   of that execve, which is the last call skipped; the entry is then removed.
 *
 * Every exit removes the task's entries, so the maps cannot leak. setup_count counts the
 * setup_tasks entries: a watched container's syscall pays one array load when no container
 * is being set up (the usual case) and one hash lookup while one is; host processes never
 * reach the check. Fork, exec and exit of every host task pay one or two hash operations:
 * launcher_exec/fork/exit run first in process.c's programs on those tracepoints.
 */
#include "common.h"

#ifndef LAUNCHER_PATH_LEN
#define LAUNCHER_PATH_LEN 256
#endif
#ifndef MAX_SETUP_TASKS
#define MAX_SETUP_TASKS 4096        /* launchers and set-up tasks at once; a full map = counted */
#endif

#define SETUP_RUNNING 1
#define SETUP_EXECED 2

/* Written by the loader once, after load. armed = 0: nothing is ever exempt. */
struct launcher_config {
    __u64 pidns_dev;                /* the daemon's pid namespace: stat(/proc/self/ns/pid) */
    __u64 pidns_ino;
    __u32 armed;
    __u32 length;                   /* of path, with its NUL, as bpf_probe_read_kernel_str counts */
    char path[LAUNCHER_PATH_LEN];
};

/* From /sys/kernel/tracing/events/sched/sched_process_fork/format. */
struct sched_process_fork_args {
    __u64 common;
    __u32 parent_comm_loc;          /* offset 8 */
    int parent_pid;                 /* 12 */
    __u32 child_comm_loc;           /* 16 */
    int child_pid;                  /* 20 */
};

/* From .../sched_process_exec/format (process.c declares the same layout for its program). */
struct launcher_exec_args {
    __u64 common;
    __u32 filename_loc;             /* offset 8 */
    int pid;                        /* 12 */
    int old_pid;                    /* 16 */
};

BPF_ARRAY(launcher_config, struct launcher_config, 1);
BPF_HASH(launcher_tasks, __u32, __u32, MAX_SETUP_TASKS);
BPF_HASH(setup_tasks, __u32, __u32, MAX_SETUP_TASKS);
BPF_ARRAY(setup_count, __s64, 1);

static __always_inline void count_setup(__s64 delta)
{
    __u32 zero = 0;
    __s64 *count = setup_count.lookup(&zero);
    if (count)
        __sync_fetch_and_add(count, delta);
}

/* 1: the calling task of a watched container is the launcher setting it up (skip the call). */
static __always_inline int in_setup(void)
{
    __u32 zero = 0;
    __s64 *count = setup_count.lookup(&zero);
    if (!count || *count <= 0)
        return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u32 *state = setup_tasks.lookup(&tid);
    if (!state)
        return 0;
    if (*state == SETUP_EXECED && setup_tasks.delete(&tid) == 0)
        __sync_fetch_and_add(count, -1);   /* the command's execve returns: its own calls follow */
    return 1;
}

/* The task or one of its cgroup ancestors is a watched container. */
static __always_inline int in_watched_tree(void)
{
    if (watched_slot(bpf_get_current_cgroup_id()) >= 0)
        return 1;
    for (int level = EGRESS_MAX_DEPTH; level >= 1; level--) {
        __u64 id = bpf_get_current_ancestor_cgroup_id(level);
        if (id && watched_slot(id) >= 0)
            return 1;
    }
    return 0;
}

static __always_inline int is_launcher(struct launcher_exec_args *ctx, struct launcher_config *config)
{
    char path[LAUNCHER_PATH_LEN];
    long length = bpf_probe_read_kernel_str(path, sizeof(path), (char *)ctx + (ctx->filename_loc & 0xFFFF));
    if (length <= 0 || (__u32)length != config->length)
        return 0;
    for (int i = 0; i < LAUNCHER_PATH_LEN; i++) {
        if (i >= length)
            break;
        if (path[i] != config->path[i])
            return 0;
    }
    return 1;
}

/* Called first by process.c's sched_process_exec program, for every task of the host. */
static __always_inline void launcher_exec(struct launcher_exec_args *ctx)
{
    __u32 old = ctx->old_pid, now = ctx->pid;
    /* A set-up task exec'd: the container's command. Its execve's sys_exit is the last skip. */
    __u32 *state = setup_tasks.lookup(&old);
    if (state) {
        __u32 execed = SETUP_EXECED;
        if (old != now) {           /* a non-leader thread exec'd: it now has the leader's id */
            setup_tasks.delete(&old);
            if (setup_tasks.update(&now, &execed) != 0)
                count_setup(-1);
        } else {
            *state = SETUP_EXECED;
        }
        return;
    }
    /* A launcher task is one only while it runs the launcher binary. */
    launcher_tasks.delete(&old);
    __u32 zero = 0;
    struct launcher_config *config = launcher_config.lookup(&zero);
    if (!config || !config->armed || !is_launcher(ctx, config))
        return;
    struct bpf_pidns_info ns = {};
    if (bpf_get_ns_current_pid_tgid(config->pidns_dev, config->pidns_ino, &ns, sizeof(ns)) != 0)
        return;                   /* another pid namespace: a container's look-alike */
    if (in_watched_tree())
        return;                   /* inside a watched container: never exempt */
    __u32 one = 1;
    launcher_tasks.update(&now, &one);
    return;
}

/* Called first by process.c's sched_process_fork program (in the parent). */
static __always_inline void launcher_fork(struct sched_process_fork_args *ctx)
{
    __u32 parent = ctx->parent_pid, child = ctx->child_pid;
    if (!launcher_tasks.lookup(&parent) && !setup_tasks.lookup(&parent))
        return;
    __u32 running = SETUP_RUNNING;
    if (setup_tasks.insert(&child, &running) == 0)
        count_setup(1);
    return;
}

/* Called first by process.c's sched_process_exit program. */
static __always_inline void launcher_exit(void)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    launcher_tasks.delete(&tid);
    if (setup_tasks.delete(&tid) == 0)
        count_setup(-1);
    return;
}
