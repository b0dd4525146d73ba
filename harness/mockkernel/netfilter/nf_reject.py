"""nft/iptables `reject` (net/ipv4/netfilter/nf_reject_ipv4.c).

send_unreach(): an ICMP destination unreachable with the given code, as
icmp_send() would send it, after giving a packet still in PREROUTING a route
back to its sender (nf_reject_fill_skb_dst). send_reset(): a TCP RST built by
nf_reject_iphdr_put() (TOS 0, DF, IP ID 0, default TTL) with the same
sequence rules as tcp_v4_send_reset(); never for a RST, a fragment or a bad
checksum.
"""
from __future__ import annotations

from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.ipv4 import icmp, route, tcp_ipv4
from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH
from harness.mockkernel.wire.ipv4 import IP_OFFSET, IPPROTO_TCP, Ipv4Packet


def _fill_dst(skb: SkBuff) -> None:
    if skb.dst is None:
        rt = route.ip_route_output(skb.net, Ipv4Packet(skb.buf, skb.network_header).saddr)
        if not isinstance(rt, int):
            skb.dst = rt


def send_unreach(skb: SkBuff, code: int) -> None:
    _fill_dst(skb)
    icmp.icmp_send(skb, ICMP_DEST_UNREACH, code)


def send_reset(skb: SkBuff) -> None:
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    if iph.protocol != IPPROTO_TCP or iph.frag_off & IP_OFFSET:
        return
    th, end = iph.payload_offset, nh + iph.tot_len
    if end - th < tcp.TCP_HLEN or tcp.TcpSegment(buf, th).flags & tcp.TCPHDR_RST:
        return
    if not tcp.checksum_ok(buf, nh, th, end):
        return
    tcp_ipv4.send_reset(skb, tos=0, why="nf_send_reset")
