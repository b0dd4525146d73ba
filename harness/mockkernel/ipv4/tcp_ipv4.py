"""TCP receive without listeners (net/ipv4/tcp_ipv4.c tcp_v4_rcv, tcp_v4_send_reset).

The mock has no TCP sockets yet. A segment not sent to this host's link-layer
address (pkt_type multicast or broadcast) is discarded first (NOT_SPECIFIED).
Every other segment for a local address takes tcp_v4_rcv()'s no_tcp_socket
path: a header shorter than 20 bytes is dropped
(PKT_TOO_SMALL for doff < 5), a bad checksum is TCP_CSUM without an answer,
otherwise the segment is answered with a RST (never a RST to a RST, nor to a
segment whose route is not RTN_LOCAL, as tcp_v4_send_reset() refuses a multicast
or broadcast one) and dropped with NO_SOCKET. The RST comes from the per-netns control socket
(IP_PMTUDISC_DO: DF, IP ID 0) with the segment's TOS and the default TTL.
"""
from __future__ import annotations

import struct

from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_TCP, Ipv4Packet, build_header

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


def tcp_v4_rcv(skb: SkBuff) -> None:
    buf, th, end = skb.buf, skb.data, skb.tail
    if skb.pkt_type != PACKET_HOST or end - th < 20:
        return kfree_skb(skb, "NOT_SPECIFIED", "L4", "tcp_v4_rcv")
    doff = (buf[th + 12] >> 4) * 4
    if doff < 20:
        return kfree_skb(skb, "PKT_TOO_SMALL", "L4", "tcp_v4_rcv")
    if end - th < doff:
        return kfree_skb(skb, "NOT_SPECIFIED", "L4", "tcp_v4_rcv")
    nh = skb.network_header
    if checksum(memoryview(buf)[th:end], pseudo_header_sum(bytes(buf[nh + 12:nh + 16]), bytes(buf[nh + 16:nh + 20]),
                                                           IPPROTO_TCP, end - th)):
        return kfree_skb(skb, "TCP_CSUM", "L4", "tcp_v4_rcv")
    skb.net.tracer.hop(skb, "L4", "tcp_v4_rcv", "", f"dport {struct.unpack_from('!H', buf, th + 2)[0]} no socket")
    if not buf[th + 13] & TCP_RST and skb.dst.type == "local":
        send_reset(skb, tos=buf[nh + 1] & ~0x03, why="tcp_v4_send_reset")
    kfree_skb(skb, "NO_SOCKET", "L4", "tcp_v4_rcv")


def reset_segment(skb: SkBuff) -> tuple[int, int, int]:
    """(seq, ack_seq, flags) of the RST answering `skb`: acknowledge what it
    sent, or take the sequence number it acknowledged."""
    buf = skb.buf
    nh = skb.network_header
    th = nh + (buf[nh] & 0x0F) * 4
    tot_len = struct.unpack_from("!H", buf, nh + 2)[0]
    seq, ack_seq = struct.unpack_from("!II", buf, th + 4)
    flags = buf[th + 13]
    if flags & TCP_ACK:
        return ack_seq, 0, TCP_RST
    payload = nh + tot_len - th - (buf[th + 12] >> 4) * 4
    return 0, (seq + payload + bool(flags & TCP_SYN) + bool(flags & TCP_FIN)) & 0xFFFFFFFF, TCP_RST | TCP_ACK


def send_reset(skb: SkBuff, tos: int, why: str) -> None:
    """A RST back to the sender of `skb`, routed and sent as a local packet."""
    from harness.mockkernel.ipv4 import ip_output, route
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    th = skb.network_header + iph.header_len
    sport, dport = struct.unpack_from("!HH", skb.buf, th)
    seq, ack_seq, flags = reset_segment(skb)
    saddr, daddr = iph.daddr, iph.saddr
    out = route.ip_route_output(net, daddr, saddr)
    if isinstance(out, int):
        return
    segment = bytearray(struct.pack("!HHIIBBHHH", dport, sport, seq, ack_seq, 5 << 4, flags, 0, 0, 0))
    struct.pack_into("!H", segment, 16, checksum(segment, pseudo_header_sum(
        saddr.to_bytes(4, "big"), daddr.to_bytes(4, "big"), IPPROTO_TCP, 20)))
    header = build_header(saddr, daddr, IPPROTO_TCP, 20, ttl=net.sysctl.int("net.ipv4.ip_default_ttl"),
                          tos=tos, ident=0, frag_off=IP_DF)
    rst = alloc_skb(header + segment)
    rst.net, rst.dst, rst.dev = net, out, out.dev
    rst.network_header, rst.transport_header = rst.data, rst.data + 20
    net.tracer.start(rst, f"{why}: {Ipv4Packet(rst.buf, rst.data).summary()}", parent=skb)
    ip_output.ip_local_out(rst)
