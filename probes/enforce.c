/* Policy enforcement in BPF: syscall `kill` rules and network egress rules.
 *
 * Kill: corral_sys_exit (syscalls.c) calls enforce_kill() after counting, with the slot it
 * already found. A container without kill rules pays one array lookup and one load (`armed`);
 * processes outside watched containers never get here. bpf_send_signal() signals the calling
 * process; the signal is delivered on the way back to user space, so the syscall has run:
 * this is "kill", not "deny" (seccomp denies). Compat (32-bit) calls, counted as "other",
 * are never killed.
 *
 * Egress: cgroup sock_addr programs the loader attaches (BPF_F_ALLOW_MULTI) to the v2
 * directory of each container with egress rules: connect4/connect6 (TCP, and UDP sockets that
 * connect) and sendmsg4/sendmsg6 (unconnected UDP). Returning 0 refuses the call with EPERM.
 * The destination comes from the UAPI context (user_ip4/user_ip6, user_port in network byte
 * order, protocol). A v4-mapped IPv6 destination (::ffff:a.b.c.d) is matched as the IPv4
 * address it reaches, so a dual-stack socket cannot step around an IPv4 rule.
 *
 * Exports: kill_tables   ARRAY[slot] = struct kill_table
 *          egress_tables ARRAY[slot] = struct egress_table
 *          events ring buffer: struct kill_event, struct egress_event
 */
#include "common.h"

#if EGRESS_MAX_RULES & (EGRESS_MAX_RULES - 1)
#error "EGRESS_MAX_RULES must be a power of two"
#endif

BPF_ARRAY(kill_tables, struct kill_table, MAX_CONTAINERS);
BPF_ARRAY(egress_tables, struct egress_table, MAX_CONTAINERS);

static __always_inline void enforce_kill(int slot, __u64 cgroup_id, __u32 nr)
{
    __u32 index = slot;
    struct kill_table *table = kill_tables.lookup(&index);
    if (!table || !table->armed)
        return;
    if (nr >= SYSCALL_OTHER)
        return;
    __u32 sig = table->signal[nr];
    if (!sig)
        return;
    long result = bpf_send_signal(sig);
    struct kill_event *event = events.ringbuf_reserve(sizeof(struct kill_event));
    if (!event) {
        count_error(ERR_SYSCALL_KILL);  /* the kill happened; its report is lost */
        count_lost_event();
        return;
    }
    event->type = EVENT_KILL;
    event->pid = bpf_get_current_pid_tgid() >> 32;
    event->cgroup_id = cgroup_id;
    event->time_ns = bpf_ktime_get_ns();
    event->nr = nr;
    event->signal = sig;
    event->result = (__s32)result;
    event->pad = 0;
    bpf_get_current_comm(event->comm, sizeof(event->comm));
    events.ringbuf_submit(event, 0);
}

/* The slot of the container the calling task belongs to: its own cgroup, or for a task in a
 * sub-cgroup of a container, the nearest watched ancestor (the program is attached to the
 * container's directory, so it runs for the whole subtree). */
static __always_inline int egress_slot(__u64 *cgroup_id)
{
    __u64 id = bpf_get_current_cgroup_id();
    int slot = watched_slot(id);
    if (slot >= 0) {
        *cgroup_id = id;
        return slot;
    }
    for (int level = EGRESS_MAX_DEPTH; level >= 1; level--) {
        id = bpf_get_current_ancestor_cgroup_id(level);
        if (!id)
            continue;               /* deeper than the task's cgroup */
        slot = watched_slot(id);
        if (slot >= 0) {
            *cgroup_id = id;
            return slot;
        }
    }
    return -1;
}

static __always_inline int rule_matches(struct egress_rule *rule, __u8 family, __u32 *addr,
                                        __u16 port, __u8 protocol)
{
    if (rule->family != family)
        return 0;
    if (rule->port && rule->port != port)
        return 0;
    if (rule->protocol && rule->protocol != protocol)
        return 0;
    if ((addr[0] & rule->mask[0]) != rule->addr[0])
        return 0;
    if (family == 4)
        return 1;
    return (addr[1] & rule->mask[1]) == rule->addr[1]
        && (addr[2] & rule->mask[2]) == rule->addr[2]
        && (addr[3] & rule->mask[3]) == rule->addr[3];
}

/* Index of the lowest set bit of x (x != 0), without branches or loops: a loop here would run
 * once per way out of the rule scan and blow the verifier's budget. */
static __always_inline __u32 lowest_bit(__u32 x)
{
    __u32 v = (x & (~x + 1)) - 1;   /* the bits below the lowest set one */
    v = v - ((v >> 1) & 0x55555555);
    v = (v & 0x33333333) + ((v >> 2) & 0x33333333);
    return (((v + (v >> 4)) & 0x0F0F0F0F) * 0x01010101) >> 24;
}

/* 1: allow the call, 0: refuse it. `addr` is the destination (IPv4 in addr[0]). */
static __always_inline int egress_verdict(__u8 family, __u32 *addr, __u16 port, __u8 protocol)
{
    __u64 cgroup_id = 0;
    int slot = egress_slot(&cgroup_id);
    if (slot < 0)
        return 1;                   /* not a watched container: detached meanwhile */
    __u32 index = slot;
    struct egress_table *table = egress_tables.lookup(&index);
    if (!table) {
        count_error(ERR_EGRESS);
        return 1;
    }
    __u32 decided = 0;              /* bit p: policy p's first matching rule was seen */
    int found = 0, blocked = 0;
    __u8 policy = 0;
    __u16 rule_index = 0;
    /* Every entry is scanned: unused ones have family 0 and never match. A `count` exit would
     * let clang fold both exits into one the verifier cannot bound, and split its states. */
    for (__u32 i = 0; i < EGRESS_MAX_RULES; i++) {
        struct egress_rule *rule = &table->rules[i];
        __u32 bit = 1u << (rule->policy & 31);
        if (decided & bit)
            continue;
        if (!rule_matches(rule, family, addr, port, protocol))
            continue;
        decided |= bit;
        if (rule->action != EGRESS_DENY)
            continue;
        if (table->audit & bit) {
            if (!found) {
                found = 1;
                policy = rule->policy;
                rule_index = rule->rule;
            }
            continue;
        }
        found = blocked = 1;
        policy = rule->policy;
        rule_index = rule->rule;
        break;
    }
    /* Entries are grouped by policy in order, so a refusing rule of policy q was found after
     * every entry of the policies before q: the first of those whose default refuses (and no
     * rule decided) is the one to name, as the reference names the first refusing policy. */
    __u32 pending = table->deny_default & ~decided;
    __u32 enforcing = pending & ~table->audit;
    if (blocked)
        enforcing &= (1u << (policy & 31)) - 1;
    if (enforcing) {
        found = blocked = 1;
        policy = lowest_bit(enforcing);
        rule_index = EGRESS_DEFAULT_RULE;
    } else if (!found && (pending & table->audit)) {
        found = 1;
        policy = lowest_bit(pending & table->audit);
        rule_index = EGRESS_DEFAULT_RULE;
    }
    if (!found)
        return 1;
    struct egress_event *event = events.ringbuf_reserve(sizeof(struct egress_event));
    if (!event) {
        count_error(ERR_EGRESS);    /* the verdict stands; its report is lost */
        count_lost_event();
        return !blocked;
    }
    event->type = EVENT_EGRESS;
    event->pid = bpf_get_current_pid_tgid() >> 32;
    event->cgroup_id = cgroup_id;
    event->time_ns = bpf_ktime_get_ns();
    event->addr[0] = addr[0];
    event->addr[1] = addr[1];
    event->addr[2] = addr[2];
    event->addr[3] = addr[3];
    event->port = port;
    event->protocol = protocol;
    event->family = family;
    event->blocked = blocked;
    event->policy = policy;
    event->rule = rule_index;
    event->generation = table->generation;
    event->pad = 0;
    bpf_get_current_comm(event->comm, sizeof(event->comm));
    events.ringbuf_submit(event, 0);
    return !blocked;
}

static __always_inline int egress4(struct bpf_sock_addr *ctx)
{
    __u32 addr[4] = {ctx->user_ip4, 0, 0, 0};
    return egress_verdict(4, addr, bpf_ntohs((__u16)ctx->user_port), (__u8)ctx->protocol);
}

static __always_inline int egress6(struct bpf_sock_addr *ctx)
{
    __u32 addr[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
    __u16 port = bpf_ntohs((__u16)ctx->user_port);
    if (addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xFFFF)) {
        __u32 v4[4] = {addr[3], 0, 0, 0};
        return egress_verdict(4, v4, port, (__u8)ctx->protocol);
    }
    return egress_verdict(6, addr, port, (__u8)ctx->protocol);
}

int corral_connect4(struct bpf_sock_addr *ctx)
{
    return egress4(ctx);
}

int corral_sendmsg4(struct bpf_sock_addr *ctx)
{
    return egress4(ctx);
}

int corral_connect6(struct bpf_sock_addr *ctx)
{
    return egress6(ctx);
}

int corral_sendmsg6(struct bpf_sock_addr *ctx)
{
    return egress6(ctx);
}
