"""IPv6 reassembly of locally delivered fragments (net/ipv6/reassembly.c,
include/net/ipv6_frag.h, net/ipv4/inet_fragment.c), the handler of the
fragment header. The queue code (inet_frag_find, inet_frag_queue_insert,
inet_frag_kill, the datagram's rebuild, ip6frag_expire_frag_queue) is shared
with conntrack's reassembly (netfilter/nf_conntrack_reasm.py), as the kernel shares it.

ipv6_frag_rcv(): a fragment header with offset 0 and M clear (an atomic
fragment) is skipped; a first fragment that does not hold the upper-layer
header is answered with parameter problem code 3 (ICMPV6_HDR_INCOMP,
pointer 0, RFC 8200 4.5). Fragments are queued by (identification, saddr,
daddr) (fq_find()); ip6_frag_queue() refuses a fragment ending past 65535
and a non-last one whose length is not a multiple of 8 with parameter
problems (pointing at frag_off and at payload_len), an exact duplicate
(DUP_FRAG), and kills the queue for an overlap or a conflicting end
(RFC 5722). The datagram completes on the fragment that filled the last hole:
the first fragment's headers, its fragment header gone, payload_len set,
and delivery goes on with the header the fragment header named. A queue
still incomplete after ip6frag_time (60 s) sends ICMPv6 time exceeded
(fragment reassembly time exceeded) if its first fragment arrived
(ip6frag_expire_frag_queue()), every queued fragment freed
FRAG_REASM_TIMEOUT. Left out: the memory thresholds, ECN combination, SNMP6.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.ipv6.exthdrs import icmpv6_param_prob_reason
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.ipv6.protocol import inet6_add_protocol
from harness.mockkernel.wire.icmpv6 import (ICMPV6_EXC_FRAGTIME, ICMPV6_HDR_FIELD, ICMPV6_HDR_INCOMP,
                                            ICMPV6_HLEN, ICMPV6_TIME_EXCEED)
from harness.mockkernel.wire.ipv6 import (ADDRS, FRAG_HEADER, FRAG_HLEN, FRAG_OFF, IP6_MF, IP6_OFFSET, IPV6_HLEN,
                                          IPV6_MAXPLEN, NEXTHDR, NEXTHDR_FRAGMENT, NEXTHDR_ICMP, NEXTHDR_TCP,
                                          NEXTHDR_UDP, PAYLOAD_LEN, Ipv6Packet)

STAGE = Stage.IP_DEFRAG
# ipv6frag_thdr_truncated(): the bytes of each upper-layer header a first fragment must hold
UPPER_HEADER_LEN = {NEXTHDR_TCP: 20, NEXTHDR_UDP: 8, NEXTHDR_ICMP: ICMPV6_HLEN}


IPFRAG_OK, IPFRAG_DUP, IPFRAG_OVERLAP = 0, 1, 2  # inet_frag_queue_insert()'s answers
# ip6_frag_queue() is inlined into ipv6_frag_rcv() (6.18: no ip6_frag_queue in kallsyms), so its
# kfree_skb_reason() calls report ipv6_frag_rcv as their location (a duplicate's DUP_FRAG included)
INLINED_INTO = "ipv6_frag_rcv"


@dataclass
class FragQueue:
    """struct frag_queue: fragments by offset as (end, skb), the datagram's
    length once the last fragment came, the bytes queued (meat), the largest
    fragment's payload_len (q.max_size, for frag_max_size), nhoffset from the first."""

    key: tuple
    fragments: dict[int, tuple[int, SkBuff]] = field(default_factory=dict)
    length: int = 0
    meat: int = 0
    max_size: int = 0
    last_in: bool = False
    first_in: bool = False
    nhoffset: int = NEXTHDR
    iif: int = 0
    dead: bool = False


def ipv6frag_thdr_truncated(skb: SkBuff, fhoff: int) -> bool:
    """ipv6frag_thdr_truncated() (include/net/ipv6_frag.h): a first fragment
    (its fragment header at `fhoff`) that ends inside its upper-layer header."""
    offset, nexthdr, frag_off = ipv6_skip_exthdr(skb.buf, fhoff, NEXTHDR_FRAGMENT, skb.tail)
    if offset < 0 or frag_off & IP6_OFFSET:
        return False
    return offset + UPPER_HEADER_LEN.get(nexthdr, 1) > skb.tail


def inet_frag_find(net, frags: dict, key: tuple, timeout: float, expire) -> FragQueue:
    """inet_frag_find(): the queue of `key` in `frags`, made with its timer
    (`expire(net, fq)` after `timeout` seconds) when it is the first fragment."""
    fq = frags.get(key)
    if fq is None:
        fq = frags[key] = FragQueue(key)
        net.clock.add_timer(timeout, lambda: expire(net, fq))
    return fq


def inet_frag_queue_insert(fq: FragQueue, skb: SkBuff, offset: int, end: int) -> int:
    """A fragment inside one already queued is a duplicate; one overlapping
    another is an overlap (RFC 5722); else it is queued."""
    for other_offset, (other_end, _) in fq.fragments.items():
        if other_offset <= offset and end <= other_end:
            return IPFRAG_DUP
        if offset < other_end and other_offset < end:
            return IPFRAG_OVERLAP
    fq.fragments[offset] = (end, skb)
    fq.meat += end - offset
    return IPFRAG_OK


def inet_frag_kill(frags: dict, fq: FragQueue) -> None:
    """inet_frag_kill(): the queue leaves the table, its fragments are freed."""
    fq.dead = True
    frags.pop(fq.key, None)
    for _, frag in fq.fragments.values():
        kfree_skb(frag, DropReason.NOT_SPECIFIED, STAGE, "inet_frag_rbtree_purge")


def ip6_frag_complete(fq: FragQueue) -> bool:
    """First and last fragment in, and every byte between them."""
    return fq.first_in and fq.last_in and fq.meat == fq.length


def inet_frag_reasm(frags: dict, fq: FragQueue, last: SkBuff) -> int:
    """inet_frag_reasm_prepare() + _finish() for IPv6: the datagram on `last`,
    the first fragment's headers up to its fragment header, whose next header
    takes the fragment header's place; payload_len set, the transport header
    after the unfragmentable part. Returns the datagram's length."""
    head = fq.fragments[0][1]
    hnh, hfh = head.network_header, head.transport_header
    unfragmentable = bytearray(head.buf[hnh:hfh])
    unfragmentable[fq.nhoffset] = head.buf[hfh]
    payload = bytearray(fq.length)
    for offset, (end, frag) in fq.fragments.items():
        start = frag.transport_header + FRAG_HLEN
        payload[offset:end] = frag.buf[start:start + end - offset]
    data = unfragmentable + payload
    fq.dead = True
    del frags[fq.key]
    last.buf = bytearray(last.data) + data
    last.network_header = last.data
    last.tail = last.data + len(data)
    last.transport_header = last.data + len(unfragmentable)
    Ipv6Packet(last.buf, last.data).payload_len = len(data) - IPV6_HLEN
    return len(data)


def ip6frag_expire_frag_queue(net, frags: dict, fq: FragQueue, location: str) -> None:
    """ip6frag_expire_frag_queue() (include/net/ipv6_frag.h), the timer of
    both reassemblies: a queue still incomplete sends time exceeded (fragment
    reassembly time exceeded) quoting its first fragment, if that came and the
    device it came in on is still there; every fragment FRAG_REASM_TIMEOUT."""
    if fq.dead:
        return
    fq.dead = True
    frags.pop(fq.key, None)
    dev = net.devices.get(fq.iif)
    head = fq.fragments.pop(0, (None, None))[1] if fq.first_in and dev is not None else None
    if head is not None:
        head.dev = dev
        net.ipv6.icmpv6_send(head, ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME, 0)
        kfree_skb(head, DropReason.FRAG_REASM_TIMEOUT, STAGE, location)
    for _, frag in fq.fragments.values():
        kfree_skb(frag, DropReason.FRAG_REASM_TIMEOUT, STAGE, "inet_frag_rbtree_purge")


def ipv6_frag_rcv(skb: SkBuff) -> bool:
    """The fragment header's handler: True to resubmit (an atomic fragment,
    or the datagram this fragment completed), False when it is queued or freed."""
    buf, nh, fh = skb.buf, skb.network_header, skb.transport_header
    if not int.from_bytes(buf[nh + PAYLOAD_LEN:nh + PAYLOAD_LEN + 2], "big") or skb.tail - fh < FRAG_HLEN:
        return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, fh - nh, DropReason.NOT_SPECIFIED, STAGE, "ipv6_frag_rcv")
    nexthdr, frag_off, ident = FRAG_HEADER.unpack_from(buf, fh)
    if not frag_off & (IP6_OFFSET | IP6_MF):
        skb.cb["nhoff"] = fh - nh
        skb.transport_header = fh + FRAG_HLEN
        return True
    if ipv6frag_thdr_truncated(skb, fh):
        return icmpv6_param_prob_reason(skb, ICMPV6_HDR_INCOMP, 0, DropReason.NOT_SPECIFIED, STAGE, "ipv6_frag_rcv")
    net = skb.net
    saddr, daddr = ADDRS.unpack_from(buf, nh)
    fq = inet_frag_find(net, net.ipv6.frags, (ident, saddr, daddr), net.sysctl.values["net.ipv6.ip6frag_time"],
                        ip6_frag_expire)
    fq.iif = skb.dev.ifindex
    return ip6_frag_queue(net, fq, skb, fh, frag_off)


def ip6_frag_queue(net, fq: FragQueue, skb: SkBuff, fh: int, frag_off: int) -> bool:
    nh = skb.network_header
    offset = frag_off & IP6_OFFSET
    end = offset + Ipv6Packet(skb.buf, nh).payload_len - (fh + FRAG_HLEN - nh - IPV6_HLEN)
    if end > IPV6_MAXPLEN:
        return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, fh - nh + FRAG_OFF, DropReason.NOT_SPECIFIED, STAGE, "ipv6_frag_rcv")
    if not frag_off & IP6_MF:
        if end < fq.length or (fq.last_in and end != fq.length):
            return _discard_fq(net, fq, skb)
        fq.last_in, fq.length = True, end
    else:
        if end & 0x7:
            return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, PAYLOAD_LEN, DropReason.NOT_SPECIFIED, STAGE, "ipv6_frag_rcv")
        if end > fq.length:
            if fq.last_in:
                return _discard_fq(net, fq, skb)
            fq.length = end
    if end == offset:
        return _discard_fq(net, fq, skb)
    inserted = inet_frag_queue_insert(fq, skb, offset, end)
    if inserted == IPFRAG_DUP:
        kfree_skb(skb, DropReason.DUP_FRAG, STAGE, INLINED_INTO)
        return False
    if inserted == IPFRAG_OVERLAP:
        return _discard_fq(net, fq, skb)
    if offset == 0:
        fq.first_in, fq.nhoffset = True, skb.cb["nhoff"]
    net.tracer.hop(skb, STAGE, "ip6_frag_queue", "QUEUED", f"off={offset} end={end}")
    if ip6_frag_complete(fq):
        return ip6_frag_reasm(net, fq, skb)
    return False


def _discard_fq(net, fq: FragQueue, skb: SkBuff) -> bool:
    """inet_frag_kill() of the queue; the fragment itself NOT_SPECIFIED."""
    inet_frag_kill(net.ipv6.frags, fq)
    kfree_skb(skb, DropReason.NOT_SPECIFIED, STAGE, INLINED_INTO)
    return False


def ip6_frag_reasm(net, fq: FragQueue, last: SkBuff) -> bool:
    """The datagram on `last`, resubmitted with the header the fragment header named."""
    length = inet_frag_reasm(net.ipv6.frags, fq, last)
    last.cb["nhoff"] = fq.nhoffset
    net.tracer.hop(last, STAGE, "ip6_frag_reasm", "REASSEMBLED", f"{len(fq.fragments)} fragments, len={length}")
    return True


def ip6_frag_expire(net, fq: FragQueue) -> None:
    ip6frag_expire_frag_queue(net, net.ipv6.frags, fq, "ip6_frag_expire")


def ipv6_frag_init() -> None:
    inet6_add_protocol(ipv6_frag_rcv, NEXTHDR_FRAGMENT)
