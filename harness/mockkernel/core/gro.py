"""GRO for TCP over IPv4 (net/core/gro.c dev_gro_receive(), napi_gro_complete(),
gro_flush(); net/ipv4/af_inet.c inet_gro_receive(), inet_gro_flush();
net/ipv4/tcp_offload.c tcp_gro_receive(), tcp4_gro_complete()).

With `ethtool -K dev gro on`, napi_gro_receive() holds TCP segments of a poll
and merges the next in-order segment of the same flow into the held one: same
MAC header, addresses, ports, TOS, TTL, DF, ack_seq, flags but CWR/FIN/PSH and
option bytes; its IP ID the held one's + the segments merged so far (or the
same, with DF, when the second segment decides the flow's ID is fixed); seq
right after the held payload; some payload, no more than the first
segment's (which becomes gso_size); under gro_max_size in all. A segment that does not
merge flushes the held one of its flow and is held in its place. A segment
with PSH, FIN, URG, RST or SYN, or shorter than gso_size, flushes its flow at
once (merged into it if it could be); a pure ACK and anything not TCPv4 go
up as they are; a segment with CWR never merges (it is held anew). At most MAX_GRO_SKBS flows are held (the
oldest flushed first); the poll's end flushes the rest (napi_complete_done(),
oldest first). A merged skb goes up as one, with gso_size and gso_segs set.
Left out: GRO for UDP and tunnels, the gro_hash buckets (flows flush in the
order they were held), GRO over IPv6, SKB_GSO_TCP_FIXEDID (a fixed-ID flow
segmented again gets incrementing IDs).
"""
from __future__ import annotations

from harness.journey import Stage
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.tcp import (TCPHDR_CWR, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN,
                                         TCPHDR_URG, GroSegment, gro_complete, gro_segment)

MAX_GRO_SKBS = 8  # include/net/gro.h: flows a NAPI holds at once
GRO_MAX_SIZE = 65536  # GRO_LEGACY_MAX_SIZE, dev->gro_max_size of a veth
_FLUSH_FLAGS = TCPHDR_URG | TCPHDR_PSH | TCPHDR_RST | TCPHDR_SYN | TCPHDR_FIN


class GroHeld:
    """A held skb (NAPI_GRO_CB): its first segment, the payloads merged into
    it, their count, and the sequence number the next must start at."""

    __slots__ = ("skb", "first", "mac", "payloads", "count", "next_seq", "length", "flags", "fixed_id")

    def __init__(self, skb, first: GroSegment) -> None:
        self.skb, self.first = skb, first
        self.mac = bytes(skb.buf[skb.mac_header:skb.data])
        self.payloads = [bytes(skb.buf[skb.data + first.header_len:skb.tail])]
        self.count = 1
        self.next_seq = (first.seq + first.payload_len) & 0xFFFFFFFF
        self.length = skb.tail - skb.data
        self.flags = 0  # FIN and PSH of the merged segments
        self.fixed_id = False


def napi_gro_receive(gro_list: list[GroHeld], skb, deliver) -> None:
    """dev_gro_receive() for `skb` (after eth_type_trans()); `deliver(skb)`
    takes each skb that goes up the stack now."""
    seg = gro_segment(skb.buf, skb.data, skb.tail) if skb.protocol == ethernet.ETH_P_IP else None
    if seg is None:
        deliver(skb)
        return
    mac = skb.buf[skb.mac_header:skb.data]
    held = next((h for h in gro_list if h.first.flow == seg.flow and h.mac == mac), None)
    merged = held is not None and _can_merge(held, seg)
    if merged:
        held.payloads.append(bytes(skb.buf[skb.data + seg.header_len:skb.tail]))
        held.count += 1
        held.skb.truesize += skb.truesize  # skb_gro_receive(): the merged skb joins its frag_list
        held.next_seq = (seg.seq + seg.payload_len) & 0xFFFFFFFF
        held.length += seg.payload_len
        held.flags |= seg.flags & (TCPHDR_FIN | TCPHDR_PSH)
        skb.net.tracer.hop(skb, Stage.NAPI, "napi_gro_receive", "MERGED", f"into seq {held.first.seq}")
    mss = held.first.payload_len if merged else 1
    flush = seg.payload_len < mss or seg.flags & _FLUSH_FLAGS
    if held is not None and (flush or not merged):
        gro_list.remove(held)
        deliver(napi_gro_complete(held))
    if merged:
        return
    if flush:
        deliver(skb)
        return
    if len(gro_list) >= MAX_GRO_SKBS:
        deliver(napi_gro_complete(gro_list.pop(0)))
    gro_list.append(GroHeld(skb, seg))


def _can_merge(held: GroHeld, seg: GroSegment) -> bool:
    """tcp_gro_receive()'s and inet_gro_flush()'s tests, no flush bit set."""
    first = held.first
    if seg.match != first.match or seg.df != first.df or seg.flags & TCPHDR_CWR:
        return False
    id_offset = (seg.ident - first.ident) & 0xFFFF
    if held.count == 1 and seg.df and not id_offset:
        held.fixed_id = True
    return (id_offset == (0 if held.fixed_id else held.count & 0xFFFF)
            and 0 < seg.payload_len <= first.payload_len and seg.seq == held.next_seq  # `(len - 1) >= mss`, unsigned
            and held.length + seg.payload_len < GRO_MAX_SIZE)


def napi_gro_complete(held: GroHeld):
    """The held skb as it goes up: unchanged if nothing merged into it, else
    one packet with the merged payload, gso_size the first segment's payload
    and gso_segs the segments."""
    skb = held.skb
    if held.count == 1:
        return skb
    first = held.first
    headers = bytes(skb.buf[skb.data:skb.data + first.header_len])
    packet = gro_complete(headers, b"".join(held.payloads), held.flags)
    skb.buf = skb.buf[:skb.data] + packet
    skb.tail = len(skb.buf)
    skb.gso_size, skb.gso_segs = first.payload_len, held.count
    skb.net.tracer.hop(skb, Stage.NAPI, "napi_gro_receive", "GRO",
                       f"{held.count} segments, gso_size={first.payload_len}")
    return skb


def napi_gro_flush(gro_list: list[GroHeld], deliver) -> None:
    """gro_flush() at napi_complete_done(): every held flow goes up, oldest first."""
    for held in gro_list:
        deliver(napi_gro_complete(held))
    gro_list.clear()
