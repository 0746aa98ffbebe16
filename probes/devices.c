/* Device access control for cgroup v2: one BPF_PROG_TYPE_CGROUP_DEVICE program, loaded once,
 * attached (BPF_F_ALLOW_MULTI) to each container's v2 directory.
 *
 * The kernel runs it on every mknod() of a device node and every open() of one by a task in
 * the container's cgroup subtree; returning 0 refuses the call with EPERM. The rules of each
 * container live in device_tables, keyed by the cgroup id of the directory the program is
 * attached to; a task in a sub-cgroup of the container finds its container's table through
 * its ancestors. No table found means refuse: an attached program without rules (set-up order
 * is table first, attach second; detach first, table last) must never mean "allow all".
 *
 * The same rule list drives the v1 devices controller on hybrid hosts (agent/cgroups/devices.py
 * writes it as devices.deny/devices.allow lines), so both modes share one policy description.
 *
 * Compiled on its own (not with the observation probes): device control is enforcement, and
 * must not depend on whether the probes load.
 *
 * Exports: device_tables HASH{cgroup id} = struct device_table
 */
#include <uapi/linux/bpf.h>

#ifndef DEVICE_MAX_RULES
#define DEVICE_MAX_RULES 64         /* rules per container: Docker's defaults are 12 */
#endif
#ifndef DEVICE_MAX_CONTAINERS
#define DEVICE_MAX_CONTAINERS 4096
#endif
#ifndef DEVICE_MAX_DEPTH
#define DEVICE_MAX_DEPTH 16         /* cgroup levels searched for a sub-cgroup's container */
#endif

#define DEVICE_ANY 0xFFFFFFFF       /* a major or minor of "*" */

/* One allow rule. type: BPF_DEVCG_DEV_BLOCK 1, BPF_DEVCG_DEV_CHAR 2, 3 for both ("a");
 * access: BPF_DEVCG_ACC_MKNOD 1 | READ 2 | WRITE 4. agent/cgroups/devices.py mirrors it. */
struct device_rule {
    __u32 type;
    __u32 access;
    __u32 major;
    __u32 minor;
};

struct device_table {
    __u32 count;                    /* rules in use; the rest are zero (type 0 never matches) */
    __u32 pad;
    struct device_rule rules[DEVICE_MAX_RULES];
};

BPF_HASH(device_tables, __u64, struct device_table, DEVICE_MAX_CONTAINERS);

static __always_inline struct device_table *table_of_current(void)
{
    __u64 id = bpf_get_current_cgroup_id();
    struct device_table *table = device_tables.lookup(&id);
    if (table)
        return table;
    for (int level = DEVICE_MAX_DEPTH; level >= 1; level--) {
        id = bpf_get_current_ancestor_cgroup_id(level);
        if (!id)
            continue;               /* deeper than the task's cgroup */
        table = device_tables.lookup(&id);
        if (table)
            return table;
    }
    return 0;
}

int corral_device(struct bpf_cgroup_dev_ctx *ctx)
{
    __u32 type = ctx->access_type & 0xFFFF;
    __u32 access = ctx->access_type >> 16;
    struct device_table *table = table_of_current();
    if (!table)
        return 0;
    /* Every entry is scanned (unused ones never match): a bound the verifier sees at once. */
    for (__u32 i = 0; i < DEVICE_MAX_RULES; i++) {
        struct device_rule *rule = &table->rules[i];
        if (!(rule->type & type))
            continue;
        if (rule->major != DEVICE_ANY && rule->major != ctx->major)
            continue;
        if (rule->minor != DEVICE_ANY && rule->minor != ctx->minor)
            continue;
        if ((access & rule->access) == access)
            return 1;
    }
    return 0;
}
