"""IPv4 reassembly (net/ipv4/ip_fragment.c, net/ipv4/inet_fragment.c).

Fragments are queued by (saddr, daddr, id, protocol). An exact duplicate is
dropped (DUP_FRAG); an overlap kills the whole queue (RFC 5722 behaviour Linux
applies to IPv4 too). When every hole is filled the datagram continues on the
skb of the fragment that completed it, with tot_len set and offset/MF cleared
(DF kept if every fragment had it, as ip_frag_reasm() does). A queue still
incomplete after ipfrag_time expires: ICMP time exceeded (reassembly) if the
first fragment arrived; that head is freed in ip_expire() and the rest when the
queue is destroyed (inet_frag_rbtree_purge), all with FRAG_REASM_TIMEOUT.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.ipv4 import icmp
from harness.mockkernel.ipv4.route import DST_LOCAL
from harness.mockkernel.wire.icmp import ICMP_EXC_FRAGTIME, ICMP_TIME_EXCEEDED
from harness.mockkernel.wire.ipv4 import IP_DF, IP_MF, IP_OFFSET, Ipv4Packet


@dataclass
class IpQueue:
    """struct ipq."""

    key: tuple
    fragments: dict[int, tuple[int, SkBuff]] = field(default_factory=dict)  # offset -> (end, skb)
    total_len: int | None = None  # known once the last fragment arrived
    all_df: bool = True
    dead: bool = False


def ip_defrag(skb: SkBuff) -> SkBuff | None:
    """Queue `skb`; return the reassembled datagram when complete, else None."""
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    key = (iph.saddr, iph.daddr, iph.id, iph.protocol)
    queue = net.ipfrags.get(key)
    if queue is None:
        queue = net.ipfrags[key] = IpQueue(key)
        net.clock.add_timer(net.sysctl.values["net.ipv4.ipfrag_time"], lambda: ip_expire(net, queue))
    offset = (iph.frag_off & IP_OFFSET) << 3
    end = offset + iph.tot_len - iph.header_len
    if not iph.frag_off & IP_MF:
        queue.total_len = end
    queue.all_df = queue.all_df and bool(iph.frag_off & IP_DF)
    for other_offset, (other_end, _) in queue.fragments.items():
        if (other_offset, other_end) == (offset, end):
            return kfree_skb(skb, DropReason.DUP_FRAG, Stage.IP_DEFRAG, "ip_defrag")  # ip_frag_queue() is inlined there
        if offset < other_end and other_offset < end:
            _kill(net, queue)
            return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_DEFRAG, "ip_defrag")
    queue.fragments[offset] = (end, skb)
    net.tracer.hop(skb, Stage.IP_DEFRAG, "ip_frag_queue", "QUEUED", f"off={offset} end={end}")
    if queue.total_len is None or not _complete(queue):
        return None
    return ip_frag_reasm(net, queue, skb)


def _complete(queue: IpQueue) -> bool:
    covered = 0
    for offset in sorted(queue.fragments):
        if offset > covered:
            return False
        covered = max(covered, queue.fragments[offset][0])
    return covered >= queue.total_len


def ip_frag_reasm(net, queue: IpQueue, last: SkBuff) -> SkBuff:
    head = queue.fragments[0][1]
    hiph = Ipv4Packet(head.buf, head.network_header)
    payload = bytearray(queue.total_len)
    for offset, (end, frag) in queue.fragments.items():
        start = frag.network_header + Ipv4Packet(frag.buf, frag.network_header).header_len
        payload[offset:end] = frag.buf[start:start + end - offset]
    data = bytearray(head.buf[head.network_header:head.network_header + hiph.header_len]) + payload
    del net.ipfrags[queue.key]
    queue.dead = True
    last.buf = bytearray(last.data) + data
    last.network_header = last.data
    last.tail = last.data + len(data)
    last.transport_header = last.data + hiph.header_len
    iph = Ipv4Packet(last.buf, last.data)
    iph.tot_len = len(data)
    iph.frag_off = IP_DF if queue.all_df else 0
    iph.fill_checksum()
    net.tracer.hop(last, Stage.IP_DEFRAG, "ip_frag_reasm", "REASSEMBLED",
                   f"{len(queue.fragments)} fragments, len={len(data)}")
    return last


def _kill(net, queue: IpQueue) -> None:
    queue.dead = True
    net.ipfrags.pop(queue.key, None)
    for _, frag in queue.fragments.values():
        kfree_skb(frag, DropReason.NOT_SPECIFIED, Stage.IP_DEFRAG, "inet_frag_rbtree_purge")


def ip_expire(net, queue: IpQueue) -> None:
    """The queue's timer: still incomplete after ipfrag_time."""
    if queue.dead:
        return
    queue.dead = True
    net.ipfrags.pop(queue.key, None)
    head = queue.fragments.pop(0, (None, None))[1]
    if head is not None:
        if head.dst is not None and head.dst.input is DST_LOCAL:
            icmp.icmp_send(head, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME)
        kfree_skb(head, DropReason.FRAG_REASM_TIMEOUT, Stage.IP_DEFRAG, "ip_expire")
    for _, frag in queue.fragments.values():
        kfree_skb(frag, DropReason.FRAG_REASM_TIMEOUT, Stage.IP_DEFRAG, "inet_frag_rbtree_purge")
