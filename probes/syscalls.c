/* Per-container syscall counts (calls and errors), and opt-in latency histograms.
 *
 * Counting happens once per syscall, at raw tracepoint sys_exit: it carries the return value
 * (errors: -4095..-1) and the task's saved registers, whose orig_ax holds the syscall number.
 * A raw tracepoint is cheaper than raw_syscalls:sys_exit (no record is built), and counting at
 * exit alone avoids a second program at sys_enter. Unwatched tasks return after the cgroup
 * filter, before the register read.
 *
 * Calls of the launcher setting a container up (launcher.c, compiled before this file) are
 * skipped: counts and kill rules start with the container's command.
 *
 * The syscall kill rules of enforce.c and the rate limits of rates.c (both compiled before this
 * file) run here too, after counting: a second program on sys_exit would cost every process of
 * the host its own invocation.
 *
 * Exports: syscall_counts  PERCPU_ARRAY[slot * NR_SYSCALLS + nr] = {calls, errors}
 *          syscall_latency HASH{cgroup_id, nr} = log2(ns) histogram   (-DSYSCALL_LATENCY only)
 */
#include "common.h"

/* Offset of orig_ax (UAPI name orig_rax) in x86_64 struct pt_regs (asm/ptrace.h): 15 longs
 * precede it, then rip, then cs. This is the user ABI ptrace uses, stable across kernels;
 * tests/unit/test_probe_structs.py checks it against the installed UAPI header. */
#ifndef PT_REGS_ORIG_AX_OFFSET
#define PT_REGS_ORIG_AX_OFFSET 120
#endif
#define USER64_CS 0x33              /* code segment of 64-bit user mode; 0x23 is 32-bit compat */

struct regs_tail {
    unsigned long orig_ax;
    unsigned long ip;
    unsigned long cs;
};

BPF_PERCPU_ARRAY(syscall_counts, struct syscall_count, MAX_CONTAINERS * NR_SYSCALLS);

#ifdef SYSCALL_LATENCY
BPF_HASH(syscall_start, __u32, __u64, MAX_THREADS);
BPF_HASH(syscall_latency, struct latency_key, struct latency_hist, MAX_CONTAINERS * 64);

int corral_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    if (watched_slot(bpf_get_current_cgroup_id()) < 0)
        return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 now = bpf_ktime_get_ns();
    if (syscall_start.update(&tid, &now) != 0)
        count_error(ERR_SYSCALL_LATENCY);
    return 0;
}

/* exit() and exit_group() never reach sys_exit: forget their start time when the task ends. */
int corral_forget_start(void *ctx)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    syscall_start.delete(&tid);
    return 0;
}

static __always_inline void record_latency(__u64 cgroup_id, __u32 nr)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 *start = syscall_start.lookup(&tid);
    if (!start || *start == 0)
        return;                     /* watching began while this syscall was running */
    __u64 delta = bpf_ktime_get_ns() - *start;
    *start = 0;                     /* consumed; cheaper than a delete, the entry is reused */
    __u32 bucket = delta ? bpf_log2l(delta) : 0;
    if (bucket >= LATENCY_BUCKETS)
        bucket = LATENCY_BUCKETS - 1;
    struct latency_key key = {.cgroup_id = cgroup_id, .nr = nr};
    struct latency_hist zero = {};
    struct latency_hist *hist = syscall_latency.lookup_or_try_init(&key, &zero);
    if (!hist) {
        count_error(ERR_SYSCALL_LATENCY);
        return;
    }
    __sync_fetch_and_add(&hist->buckets[bucket], 1);
}
#endif

int corral_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    int slot = watched_slot(cgroup_id);
    if (slot < 0)
        return 0;
    /* The launcher setting the container up (launcher.c): neither counted nor killed. */
    if (in_setup())
        return 0;
    struct regs_tail regs = {};
    if (bpf_probe_read_kernel(&regs, sizeof(regs),
                              (void *)ctx->args[0] + PT_REGS_ORIG_AX_OFFSET) != 0) {
        count_error(ERR_SYSCALLS);
        return 0;
    }
    __u32 nr = regs.orig_ax < SYSCALL_OTHER && (regs.cs & 0xFFFF) == USER64_CS
        ? (__u32)regs.orig_ax : SYSCALL_OTHER;
    __u32 index = (__u32)slot * NR_SYSCALLS + nr;
    struct syscall_count *count = syscall_counts.lookup(&index);
    if (!count)
        return 0;
    /* Per-CPU value: no other CPU writes it, so a plain add is enough. */
    count->calls += 1;
    long ret = (long)ctx->args[1];
    int failed = ret < 0 && ret >= -4095;
    if (failed)
        count->errors += 1;
    /* Rate limits (rates.c): one array lookup for a container without any; the per-syscall
     * ones a bit test more, and one more lookup only for a container that has some. */
    struct rate_table *rates = rate_table_of(slot);
    if (rates) {
        rate_add(rates, RATE_SYSCALLS, 1, cgroup_id, 1);
        if (failed)
            rate_add(rates, RATE_SYSCALL_ERRORS, 1, cgroup_id, 1);
        rate_add_syscall(rates, slot, nr, failed, cgroup_id);
    }
#ifdef SYSCALL_LATENCY
    record_latency(cgroup_id, nr);
#endif
    /* Syscall kill rules (enforce.c): one array lookup for a container without any. */
    enforce_kill(slot, cgroup_id, nr);
    return 0;
}
