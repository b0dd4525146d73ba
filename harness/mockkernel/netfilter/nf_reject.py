"""nft/iptables `reject` (net/ipv4/netfilter/nf_reject_ipv4.c).

send_unreach(): an ICMP destination unreachable with the given code, as
icmp_send() would send it, after giving a packet still in PREROUTING a route
back to its sender (nf_reject_fill_skb_dst). send_reset(): a TCP RST built by
nf_reject_iphdr_put() (TOS 0, DF, IP ID 0, default TTL) with the same
sequence rules as tcp_v4_send_reset(); never for a RST, a fragment or a bad
checksum.
"""
from __future__ import annotations

import struct

from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.ipv4 import icmp, route, tcp_ipv4
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH
from harness.mockkernel.wire.ipv4 import IP_OFFSET, IPPROTO_TCP


def _fill_dst(skb: SkBuff) -> None:
    if skb.dst is None:
        saddr = struct.unpack_from("!I", skb.buf, skb.network_header + 12)[0]
        rt = route.ip_route_output(skb.net, saddr)
        if not isinstance(rt, int):
            skb.dst = rt


def send_unreach(skb: SkBuff, code: int) -> None:
    _fill_dst(skb)
    icmp.icmp_send(skb, ICMP_DEST_UNREACH, code)


def send_reset(skb: SkBuff) -> None:
    buf, nh = skb.buf, skb.network_header
    if buf[nh + 9] != IPPROTO_TCP or struct.unpack_from("!H", buf, nh + 6)[0] & IP_OFFSET:
        return
    th = nh + (buf[nh] & 0x0F) * 4
    end = nh + struct.unpack_from("!H", buf, nh + 2)[0]
    if end - th < 20 or buf[th + 13] & tcp_ipv4.TCP_RST:
        return
    if checksum(memoryview(buf)[th:end], pseudo_header_sum(bytes(buf[nh + 12:nh + 16]), bytes(buf[nh + 16:nh + 20]),
                                                           IPPROTO_TCP, end - th)):
        return
    tcp_ipv4.send_reset(skb, tos=0, why="nf_send_reset")
