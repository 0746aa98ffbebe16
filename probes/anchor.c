/* Empty programs on the attach points the syscall probe uses: the anchors bench/probe_cost.py
 * measures the probes against (what the kernel charges for running any program there).
 * Not loaded by the agent. */

int anchor_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    return 0;
}

int anchor_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    return 0;
}
