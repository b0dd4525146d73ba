"""IPv6 reassembly for connection tracking, nf_defrag_ipv6
(net/ipv6/netfilter/nf_conntrack_reasm.c nf_ct_frag6_gather(),
nf_ct_frag6_queue(), nf_ct_frag6_reasm(); nf_defrag_ipv6_hooks.c ipv6_defrag()).

With IPv6 conntrack in use in a namespace, ipv6_defrag() runs at PREROUTING
and OUTPUT at priority -400 (NF_IP6_PRI_CONNTRACK_DEFRAG), before conntrack
(-200) and every chain of a higher priority: a fragment is queued (NF_STOLEN)
until its datagram is whole, then the datagram goes on through the hooks as
one packet. Its queues are conntrack's own (one per identification, addresses,
hook, and the input device for a link-local or multicast destination), apart
from the stack's (ipv6/reassembly.py, whose queue code this shares, as
the kernel shares inet_fragment.c and ipv6_frag.h).

Where nf_ct_frag6_queue() differs from the stack's ip6_frag_queue(): a
fragment ending past 65535, a last fragment that contradicts the length
known, or one holding no data is refused (NF_DROP, NETFILTER_DROP at the
hook) and the queue lives on; a non-last fragment whose length is not a
multiple of 8 kills the queue and passes as it is, as does a first fragment
without its upper-layer header (the stack answers them if they are for
it); a duplicate is freed DUP_FRAG; an overlap kills the queue and is
dropped. No parameter problem is ever sent from here. A queue incomplete after
net.netfilter.nf_conntrack_frag6_timeout (60 s) answers as the stack's does
(ip6frag_expire_frag_queue(): time exceeded quoting the first fragment).

The datagram (nf_ct_frag6_reasm()) keeps its fragments' geometry: ignore_df
set, IP6CB(skb)->frag_max_size the largest fragment's length (40 +
payload_len), and the fragments' data lengths as skb_shinfo(skb)->frag_list
(in skb.cb["frag_list"]); ip6_output.py refragments it on the way out
(ip6_fragment()). Left out: the memory thresholds (their sysctls exist),
ECN combination, zones.
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.core.sysctl import CtlTable, proc_dointvec_jiffies, proc_doulongvec_minmax
from harness.mockkernel.ipv6.exthdrs_core import ipv6_ext_hdr
from harness.mockkernel.ipv6.reassembly import (IPFRAG_DUP, IPFRAG_OK, FragQueue, inet_frag_find,
                                                inet_frag_kill, inet_frag_queue_insert, inet_frag_reasm,
                                                ip6_frag_complete, ip6frag_expire_frag_queue,
                                                ipv6frag_thdr_truncated)
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING,
                                               NF_IP_PRI_CONNTRACK_DEFRAG, NF_STOLEN, NFPROTO_IPV6, NfHookState)
from harness.mockkernel.wire.ipv6 import (ADDRS, FRAG_HEADER, FRAG_HLEN, IP6_MF, IP6_OFFSET, IPV6_ADDR_LINKLOCAL,
                                          IPV6_ADDR_MULTICAST, IPV6_HLEN, IPV6_MAXPLEN, NEXTHDR,
                                          NEXTHDR_FRAGMENT, NEXTHDR_NONE, PAYLOAD_LEN_NEXTHDR, exthdr_len,
                                          ipv6_addr_type)

STAGE = Stage.IP_DEFRAG  # as nf_defrag_ipv4's ip_defrag(): whichever hook it runs at
TIMEOUT_KEY = "net.netfilter.nf_conntrack_frag6_timeout"
LOW_THRESH_KEY = "net.netfilter.nf_conntrack_frag6_low_thresh"
HIGH_THRESH_KEY = "net.netfilter.nf_conntrack_frag6_high_thresh"
# nf_ct_frag6_sysctl_table, with nf_ct_net_init()'s values (IPV6_FRAG_TIMEOUT, _HIGH/_LOW_THRESH)
FRAG6_SYSCTL_TABLE = {
    TIMEOUT_KEY: CtlTable(60, proc_dointvec_jiffies),
    LOW_THRESH_KEY: CtlTable(3 * 1024 * 1024, proc_doulongvec_minmax, None, HIGH_THRESH_KEY),
    HIGH_THRESH_KEY: CtlTable(4 * 1024 * 1024, proc_doulongvec_minmax, LOW_THRESH_KEY, None),
}
# include/net/ipv6_frag.h enum ip6_defrag_users, by hook
IP6_DEFRAG_CONNTRACK_IN, IP6_DEFRAG_CONNTRACK_OUT = 1, 1 + 0x10000
EINPROGRESS, EPROTO = -errno.EINPROGRESS, -errno.EPROTO


def nf_ct_frag6_pernet_init(net) -> None:
    """nf_ct_net_init(): the sysctls of a namespace (nf_defrag_ipv6 is built in here)."""
    net.sysctl.register(FRAG6_SYSCTL_TABLE)


def nf_defrag_ipv6_enable(net) -> list:
    """Register ipv6_defrag() at PREROUTING and OUTPUT; the caller keeps the entries."""
    return [net.nf_hooks.register(NFPROTO_IPV6, hook, NF_IP_PRI_CONNTRACK_DEFRAG, "nf_defrag_ipv6", ipv6_defrag)
            for hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT)]


def ipv6_defrag(skb: SkBuff, state: NfHookState) -> int:
    """A packet conntrack already saw (looped back, untracked) passes."""
    if skb.nfct is not None:
        return NF_ACCEPT
    user = IP6_DEFRAG_CONNTRACK_IN if state.hook == NF_INET_PRE_ROUTING else IP6_DEFRAG_CONNTRACK_OUT
    err = nf_ct_frag6_gather(skb, user)
    if err == EINPROGRESS:
        return NF_STOLEN
    return NF_ACCEPT if err == 0 else NF_DROP


def find_prev_fhdr(buf: bytearray, nh: int, end: int) -> tuple[int, int] | None:
    """(offset of the next-header field naming the fragment header, offset of
    the fragment header), both from the network header; None for a packet with
    no fragment header before its upper-layer one."""
    nexthdr, prev_nhoff, start = buf[nh + NEXTHDR], NEXTHDR, IPV6_HLEN
    while nexthdr != NEXTHDR_FRAGMENT:
        if not ipv6_ext_hdr(nexthdr) or nexthdr == NEXTHDR_NONE or nh + start + 2 > end:
            return None
        hdrlen = exthdr_len(buf, nh + start, nexthdr)
        prev_nhoff, nexthdr = start, buf[nh + start]
        start += hdrlen
    return (prev_nhoff, start) if nh + start <= end else None


def nf_ct_frag6_gather(skb: SkBuff, user: int) -> int:
    """0: the packet goes on (no fragment, a datagram completed, or one
    conntrack lets pass); EINPROGRESS: queued or freed; another errno: drop it."""
    buf, nh = skb.buf, skb.network_header
    payload_len, _ = PAYLOAD_LEN_NEXTHDR.unpack_from(buf, nh)
    if not payload_len:  # a jumbogram has no fragment header
        return 0
    found = find_prev_fhdr(buf, nh, skb.tail)
    if found is None:
        return 0
    nhoff, fhoff = found
    if ipv6frag_thdr_truncated(skb, nh + fhoff):  # RFC 8200 4.5: the stack answers it, if it is for us
        return 0
    if nh + fhoff + FRAG_HLEN > skb.tail:
        return -errno.ENOMEM  # pskb_may_pull() failed
    saved_transport_header = skb.transport_header
    skb.transport_header = nh + fhoff
    _, frag_off, ident = FRAG_HEADER.unpack_from(buf, nh + fhoff)
    saddr, daddr = ADDRS.unpack_from(buf, nh)
    scoped = ipv6_addr_type(daddr) & (IPV6_ADDR_MULTICAST | IPV6_ADDR_LINKLOCAL)
    key = (ident, saddr, daddr, user, skb.dev.ifindex if scoped and skb.dev is not None else 0)
    net = skb.net
    fq = inet_frag_find(net, net.nf_frags, key, net.sysctl.values[TIMEOUT_KEY], nf_ct_frag6_expire)
    err = nf_ct_frag6_queue(net, fq, skb, frag_off, payload_len, nhoff)
    if err == EPROTO:
        skb.transport_header = saved_transport_header
        return 0
    return err


def nf_ct_frag6_queue(net, fq: FragQueue, skb: SkBuff, frag_off: int, payload_len: int, nhoff: int) -> int:
    nh, fh = skb.network_header, skb.transport_header
    offset = frag_off & IP6_OFFSET
    end = offset + payload_len - (fh + FRAG_HLEN - nh - IPV6_HLEN)
    if end > IPV6_MAXPLEN:
        return -errno.EINVAL
    if not frag_off & IP6_MF:
        if end < fq.length or (fq.last_in and end != fq.length):
            return -errno.EINVAL
        fq.last_in, fq.length = True, end
    else:
        if end & 0x7:
            inet_frag_kill(net.nf_frags, fq)
            return EPROTO
        if end > fq.length:
            if fq.last_in:
                return -errno.EINVAL
            fq.length = end
    if end == offset:
        return -errno.EINVAL
    inserted = inet_frag_queue_insert(fq, skb, offset, end)
    if inserted == IPFRAG_DUP:
        kfree_skb(skb, DropReason.DUP_FRAG, STAGE, "nf_ct_frag6_gather")  # nf_ct_frag6_queue() inlined there
        return EINPROGRESS
    if inserted != IPFRAG_OK:
        inet_frag_kill(net.nf_frags, fq)
        return -errno.EINVAL
    if skb.dev is not None:
        fq.iif = skb.dev.ifindex
    fq.max_size = max(fq.max_size, payload_len)
    if offset == 0:
        fq.first_in, fq.nhoffset = True, nhoff
    net.tracer.hop(skb, STAGE, "nf_ct_frag6_queue", "QUEUED", f"off={offset} end={end}")
    if ip6_frag_complete(fq):
        return nf_ct_frag6_reasm(net, fq, skb)
    return EINPROGRESS


def nf_ct_frag6_reasm(net, fq: FragQueue, skb: SkBuff) -> int:
    """The datagram on the fragment that completed it, its fragments' geometry kept."""
    unfragmentable = fq.fragments[0][1].transport_header - fq.fragments[0][1].network_header
    if unfragmentable - IPV6_HLEN + fq.length > IPV6_MAXPLEN:
        inet_frag_kill(net.nf_frags, fq)
        return EINPROGRESS
    length = inet_frag_reasm(net.nf_frags, fq, skb)
    skb.ignore_df = True
    if skb.cb is None:  # a locally sent packet has no IP6CB() yet
        skb.cb = {}
    skb.cb["frag_max_size"] = IPV6_HLEN + fq.max_size
    skb.cb["frag_list"] = tuple(fq.fragments[offset][0] - offset for offset in sorted(fq.fragments))
    net.tracer.hop(skb, STAGE, "nf_ct_frag6_reasm", "REASSEMBLED",
                   f"{len(fq.fragments)} fragments, len={length}")
    return 0


def nf_ct_frag6_expire(net, fq: FragQueue) -> None:
    ip6frag_expire_frag_queue(net, net.nf_frags, fq, "nf_ct_frag6_expire")
