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
SNMP: InSegs for a segment to this host (InErrs and InCsumErrors for a bad
checksum), OutSegs and OutRsts for the RST.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.core.snmp import (TCP_MIB_CSUMERRORS, TCP_MIB_INERRS, TCP_MIB_INSEGS, TCP_MIB_OUTRSTS,
                                          TCP_MIB_OUTSEGS)
from harness.mockkernel.ipv4 import ip_output, route
from harness.mockkernel.net import RTN_LOCAL
from harness.mockkernel.wire import Malformed, WireError, tcp
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_TCP, Ipv4Packet, build_header
from harness.mockkernel.wire.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN


def tcp_v4_rcv(skb: SkBuff) -> None:
    """A header cut short is NOT_SPECIFIED, a data offset under 5 PKT_TOO_SMALL."""
    buf, th, end = skb.buf, skb.data, skb.tail
    if skb.pkt_type != PACKET_HOST:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "tcp_v4_rcv")
    mib = skb.net.mib.tcp_statistics
    mib[TCP_MIB_INSEGS] += 1
    try:
        tcp.check_len(buf, th, end)
    except WireError as err:
        return kfree_skb(skb, DropReason.PKT_TOO_SMALL if isinstance(err, Malformed) else DropReason.NOT_SPECIFIED,
                         Stage.L4, "tcp_v4_rcv")
    nh = skb.network_header
    if not tcp.checksum_ok(buf, nh, th, end):
        mib[TCP_MIB_CSUMERRORS] += 1
        mib[TCP_MIB_INERRS] += 1
        return kfree_skb(skb, DropReason.TCP_CSUM, Stage.L4, "tcp_v4_rcv")
    segment = tcp.TcpSegment(buf, th)
    skb.net.tracer.hop(skb, Stage.L4, "tcp_v4_rcv", "", f"dport {segment.dport} no socket")
    if not segment.flags & TCPHDR_RST and skb.dst.type is RTN_LOCAL:
        mib[TCP_MIB_OUTSEGS] += 1  # tcp_v4_send_reset()'s, not nft reject's (nf_send_reset())
        mib[TCP_MIB_OUTRSTS] += 1
        send_reset(skb, tos=Ipv4Packet(buf, nh).tos & ~0x03, why="tcp_v4_send_reset")
    kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, "tcp_v4_rcv")


def reset_segment(skb: SkBuff) -> tuple[int, int, int]:
    """(seq, ack_seq, flags) of the RST answering `skb`: acknowledge what it
    sent, or take the sequence number it acknowledged."""
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    th = iph.payload_offset
    _, _, seq, ack_seq, doff, flags, _, _, _ = tcp.unpack(buf, th)
    if flags & TCPHDR_ACK:
        return ack_seq, 0, TCPHDR_RST
    payload = nh + iph.tot_len - th - tcp.DATA_OFFSET_LEN[doff]
    return 0, (seq + payload + bool(flags & TCPHDR_SYN) + bool(flags & TCPHDR_FIN)) & 0xFFFFFFFF, \
        TCPHDR_RST | TCPHDR_ACK


def send_reset(skb: SkBuff, tos: int, why: str) -> None:
    """A RST back to the sender of `skb`, routed and sent as a local packet."""
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    sport, dport = tcp.PORTS.unpack_from(skb.buf, iph.payload_offset)
    seq, ack_seq, flags = reset_segment(skb)
    saddr, daddr = iph.daddr, iph.saddr
    out = route.ip_route_output(net, daddr, saddr)
    if isinstance(out, int):
        return
    segment = tcp.build(saddr, daddr, dport, sport, seq, ack_seq, flags)
    header = build_header(saddr, daddr, IPPROTO_TCP, len(segment), ttl=net.sysctl.values["net.ipv4.ip_default_ttl"],
                          tos=tos, ident=0, frag_off=IP_DF)
    rst = alloc_skb(header + segment)
    rst.net, rst.dst, rst.dev = net, out, out.dev
    rst.network_header, rst.transport_header = rst.data, rst.data + len(header)
    net.tracer.start(rst, f"{why}: {Ipv4Packet(rst.buf, rst.data).summary()}", parent=skb)
    ip_output.ip_local_out(rst)
