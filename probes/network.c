/* Network traffic and TCP activity per container.
 *
 * corral_skb_in / corral_skb_out are cgroup_skb programs the loader attaches (ingress and
 * egress, BPF_F_ALLOW_MULTI) to each watched container's v2 directory. They count skb->len,
 * the IP packet with its headers, and gso_segs packets for a GSO super-packet. They always
 * return 1: counting never drops traffic.
 *
 * TCP connects: sock:inet_sock_set_state CLOSE -> SYN_SENT, which runs in the connect()ing
 * task, so its cgroup id names the container. Retransmits: tcp:tcp_retransmit_skb mostly runs
 * in softirq or timer context, where the current task is unrelated, so the socket's owner is
 * remembered at connect time (tcp_owner: socket address -> cgroup id) and forgotten when the
 * socket reaches CLOSE. Sockets accepted from a listener are not in tcp_owner: their state
 * changes all happen in softirq context; their retransmits are not counted.
 *
 * The destination of each connect (address, port) is counted per container in
 * tcp_destinations, for `corral policy suggest`: what a container reached is what its egress
 * rules must allow. Entries go when the container is unwatched; a full table counts an error.
 *
 * Rate limits (rates.c, compiled before this file) are counted where the counters are: bytes in
 * count_skb, connects in corral_sock_state.
 *
 * Exports: net_counters PERCPU_ARRAY[slot] = {rx_bytes, rx_packets, tx_bytes, tx_packets}
 *          tcp_counters PERCPU_ARRAY[slot] = {connects, retransmits}
 *          tcp_destinations HASH{cgroup_id, family, port, addr} = connects
 */
#include "common.h"

#define IPPROTO_TCP_ 6
#define TCP_SYN_SENT_ 2
#define TCP_CLOSE_ 7

/* From /sys/kernel/tracing/events/sock/inet_sock_set_state/format (fields up to protocol). */
struct inet_sock_set_state_args {
    __u64 common;
    const void *skaddr;             /* offset 8 */
    int oldstate;                   /* 16 */
    int newstate;                   /* 20 */
    __u16 sport;                    /* 24 */
    __u16 dport;                    /* 26 */
    __u16 family;                   /* 28 */
    __u16 protocol;                 /* 30 */
    __u8 saddr[4];                  /* 32 */
    __u8 daddr[4];                  /* 36 */
    __u8 saddr_v6[16];              /* 40 */
    __u8 daddr_v6[16];              /* 56 */
};

#define AF_INET_ 2


/* From /sys/kernel/tracing/events/tcp/tcp_retransmit_skb/format (fields up to skaddr). */
struct tcp_retransmit_skb_args {
    __u64 common;
    const void *skbaddr;            /* 8 */
    const void *skaddr;             /* 16 */
};

BPF_PERCPU_ARRAY(net_counters, struct net_counters, MAX_CONTAINERS);
BPF_PERCPU_ARRAY(tcp_counters, struct tcp_counters, MAX_CONTAINERS);
BPF_HASH(tcp_owner, __u64, __u64, MAX_TCP_SOCKETS);
BPF_HASH(tcp_destinations, struct tcp_destination, __u64, MAX_DESTINATIONS);

static __always_inline void count_skb(struct __sk_buff *skb, int egress)
{
    int slot = watched_slot(bpf_skb_cgroup_id(skb));
    if (slot < 0)
        return;                     /* a socket of a sub-cgroup or of no watched container */
    __u32 index = slot;
    struct net_counters *counters = net_counters.lookup(&index);
    if (!counters) {
        count_error(ERR_NETWORK);
        return;
    }
    __u64 packets = skb->gso_segs > 1 ? skb->gso_segs : 1;
    if (egress) {
        counters->tx_bytes += skb->len;
        counters->tx_packets += packets;
    } else {
        counters->rx_bytes += skb->len;
        counters->rx_packets += packets;
    }
    struct rate_table *rates = rate_table_of(slot);
    if (rates)          /* often softirq context: the current task need not be the container's */
        rate_add(rates, egress ? RATE_NET_TX_BYTES : RATE_NET_RX_BYTES, skb->len, bpf_skb_cgroup_id(skb), 0);
}

int corral_skb_in(struct __sk_buff *skb)
{
    count_skb(skb, 0);
    return 1;
}

int corral_skb_out(struct __sk_buff *skb)
{
    count_skb(skb, 1);
    return 1;
}

static __always_inline void count_destination(struct inet_sock_set_state_args *ctx, __u64 cgroup_id)
{
    struct tcp_destination dest = {};
    dest.cgroup_id = cgroup_id;
    dest.family = ctx->family;
    dest.port = ctx->dport;
    if (ctx->family == AF_INET_)
        __builtin_memcpy(dest.addr, ctx->daddr, 4);
    else
        __builtin_memcpy(dest.addr, ctx->daddr_v6, 16);
    __u64 *connects = tcp_destinations.lookup(&dest);
    if (connects) {
        __sync_fetch_and_add(connects, 1);
        return;
    }
    __u64 one = 1;
    if (tcp_destinations.update(&dest, &one) != 0)
        count_error(ERR_TCP_CONNECT);   /* table full: this destination is not remembered */
}

int corral_sock_state(struct inet_sock_set_state_args *ctx)
{
    if (ctx->protocol != IPPROTO_TCP_)
        return 0;
    __u64 sock = (__u64)ctx->skaddr;
    if (ctx->newstate == TCP_CLOSE_) {
        tcp_owner.delete(&sock);
        return 0;
    }
    if (ctx->newstate != TCP_SYN_SENT_ || ctx->oldstate != TCP_CLOSE_)
        return 0;
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    int slot = watched_slot(cgroup_id);
    if (slot < 0)
        return 0;
    __u32 index = slot;
    struct tcp_counters *counters = tcp_counters.lookup(&index);
    if (counters)
        counters->connects += 1;
    struct rate_table *rates = rate_table_of(slot);
    if (rates)
        rate_add(rates, RATE_TCP_CONNECTS, 1, cgroup_id, 1);
    if (tcp_owner.update(&sock, &cgroup_id) != 0)
        count_error(ERR_TCP_CONNECT);   /* table full: this socket's retransmits are lost */
    count_destination(ctx, cgroup_id);
    return 0;
}

int corral_tcp_retransmit(struct tcp_retransmit_skb_args *ctx)
{
    __u64 sock = (__u64)ctx->skaddr;
    __u64 *cgroup_id = tcp_owner.lookup(&sock);
    if (!cgroup_id)
        return 0;
    int slot = watched_slot(*cgroup_id);
    if (slot < 0)
        return 0;
    __u32 index = slot;
    struct tcp_counters *counters = tcp_counters.lookup(&index);
    if (!counters) {
        count_error(ERR_TCP_RETRANSMIT);
        return 0;
    }
    counters->retransmits += 1;
    return 0;
}
