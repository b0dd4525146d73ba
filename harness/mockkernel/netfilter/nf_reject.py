"""nft/iptables `reject` (net/ipv4/netfilter/nf_reject_ipv4.c,
net/ipv6/netfilter/nf_reject_ipv6.c).

send_unreach(): an ICMP destination unreachable with the given code, as
icmp_send() would send it, after giving a packet still in PREROUTING a route
back to its sender (nf_reject_fill_skb_dst). send_reset(): a TCP RST built by
nf_reject_iphdr_put() (TOS 0, DF, IP ID 0, default TTL) with the same
sequence rules as tcp_v4_send_reset(), taking the segment's conntrack entry
(nf_ct_attach(): RELATED to it); never for a RST, a fragment or a bad
checksum.

send_unreach6(): icmpv6_send() of a destination unreachable, for a packet
whose TCP or UDP checksum holds when it is still in PREROUTING or INPUT
(reject6_csum_ok()), after giving it a route back. send_reset6(): a TCP RST
(nf_reject_ip6hdr_put(): traffic class and flow label 0, the route's hop
limit) with tcp_v6_send_reset()'s sequence rules, for a TCP segment past the
extension headers that is no fragment, no RST and has a good checksum.
"""
from __future__ import annotations

from harness.mockkernel.core.skbuff import SkBuff, alloc_skb
from harness.mockkernel.ipv4 import icmp, route, tcp_ipv4
from harness.mockkernel.ipv6 import icmp as icmp6
from harness.mockkernel.ipv6 import ip6_output
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from harness.mockkernel.netfilter.utils import nf_ip_checksum, skb_csum_unnecessary
from harness.mockkernel.wire import ipv6, tcp, udp
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.field import BE16
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH
from harness.mockkernel.wire.icmpv6 import ICMPV6_DEST_UNREACH
from harness.mockkernel.wire.ipv4 import IP_OFFSET, IPPROTO_TCP, IPPROTO_UDP, Ipv4Packet


def _fill_dst(skb: SkBuff) -> None:
    if skb.dst is None:
        rt = route.ip_route_output(skb.net, Ipv4Packet(skb.buf, skb.network_header).saddr)
        if not isinstance(rt, int):
            skb.dst = rt


# nf_reject_verify_csum() (include/net/netfilter/nf_reject.h): protocols whose checksum is no
# ones' complement sum of the whole payload (GRE, AH, ESP, SCTP, UDP-Lite); UDP without one
NOT_VERIFIED = frozenset({47, 51, 50, 132, 136})


def _l4_checksum_ok(skb: SkBuff, hook: int) -> bool:
    """nf_send_unreach()'s test: a packet whose sum was verified already
    (skb_csum_unnecessary(): csum_valid) or of a protocol nf_reject_verify_csum()
    skips (UDP with a zero checksum too) passes; else nf_ip_checksum() must verify
    (netfilter/utils.py: from the network header, which a record route written on
    the way in leaves stale). (A locally sent packet is CHECKSUM_PARTIAL,
    skb_csum_unnecessary(): see send_unreach.)"""
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    proto, th = iph.protocol, iph.payload_offset
    end = min(nh + iph.tot_len, skb.tail)
    if proto in NOT_VERIFIED or th > end or skb_csum_unnecessary(skb):
        return True
    if proto == IPPROTO_UDP and th + udp.UDP_HLEN <= end and not BE16.unpack_from(buf, th + udp.CHECK)[0]:
        return True
    return nf_ip_checksum(skb, hook)


def send_unreach(skb: SkBuff, code: int, hook: int) -> None:
    """nf_send_unreach(): no error about a non-first fragment; a packet without a
    route gets one back to its source (nf_reject_fill_skb_dst()); a received
    packet (ip_summed CHECKSUM_NONE: veth modifies nothing) whose transport
    checksum fails nf_ip_checksum() gets none, as icmp_rcv() would refuse it. A
    packet sent by this host (LOCAL_OUT) is CHECKSUM_PARTIAL or carries a full sum:
    not checked."""
    if Ipv4Packet(skb.buf, skb.network_header).frag_off & IP_OFFSET:
        return
    _fill_dst(skb)
    if skb.dst is None:
        return
    if hook != NF_INET_LOCAL_OUT and not _l4_checksum_ok(skb, hook):
        return
    icmp.icmp_send(skb, ICMP_DEST_UNREACH, code)


def send_reset(skb: SkBuff, hook: int) -> None:
    """nf_send_reset(): nf_reject_ip_tcphdr_get()'s tests (TCP, no fragment, room
    for the header, no RST, a good checksum: nf_ip_checksum(), no
    skb_csum_unnecessary() shortcut), a route back for a packet without
    one (nf_reject_fill_skb_dst()), none to a broadcast or multicast route; the
    RST is built before ip_route_me_harder() routes it, and freed (`goto
    free_nskb`: kfree_skb(), NOT_SPECIFIED) when no route goes back."""
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    if iph.protocol != IPPROTO_TCP or iph.frag_off & IP_OFFSET:
        return
    th, end = iph.payload_offset, nh + iph.tot_len
    if end - th < tcp.TCP_HLEN or tcp.TcpSegment(buf, th).flags & tcp.TCPHDR_RST:
        return
    if not nf_ip_checksum(skb, hook):
        return
    _fill_dst(skb)
    rt = skb.dst
    if rt is None or rt.is_broadcast or rt.is_multicast:
        return
    tcp_ipv4.send_reset(skb, tos=0, why="nf_send_reset", unrouted="nf_send_reset", attach=True)


def _transport6(skb: SkBuff) -> tuple[int, int, int]:
    """(offset, protocol, frag_off) of the IPv6 packet's transport header."""
    buf, nh = skb.buf, skb.network_header
    return ipv6_skip_exthdr(buf, nh + ipv6.IPV6_HLEN, buf[nh + ipv6.NEXTHDR], skb.tail)


def _checksum6_ok(skb: SkBuff, th: int, proto: int) -> bool:
    """nf_ip6_checksum() of the TCP or UDP payload at `th` against the pseudo-header."""
    saddr, daddr = ipv6.ADDRS.unpack_from(skb.buf, skb.network_header)
    length = skb.tail - th
    return not checksum(memoryview(skb.buf)[th:skb.tail], pseudo_header_sum(saddr, daddr, proto, length))


def send_unreach6(skb: SkBuff, code: int, hook: int) -> None:
    th, proto, frag_off = _transport6(skb)
    if hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN) and proto in (IPPROTO_TCP, IPPROTO_UDP) \
            and th >= 0 and not frag_off & ~0x7 and not _checksum6_ok(skb, th, proto):
        return
    if skb.dst is None:  # nf_reject6_fill_skb_dst()
        skb.dst = route6.ip6_route_output(skb.net, ipv6.ADDRS.unpack_from(skb.buf, skb.network_header)[0])
    icmp6.icmp6_send(skb, ICMPV6_DEST_UNREACH, code, 0)


def send_reset6(skb: SkBuff) -> None:
    buf, nh = skb.buf, skb.network_header
    th, proto, frag_off = _transport6(skb)
    if proto != IPPROTO_TCP or th < 0 or frag_off & ~0x7 or skb.tail - th < tcp.TCP_HLEN:
        return
    sport, dport, seq, ack_seq, doff, flags, _, _, _ = tcp.unpack(buf, th)
    if flags & tcp.TCPHDR_RST or not _checksum6_ok(skb, th, IPPROTO_TCP):
        return
    if flags & tcp.TCPHDR_ACK:
        seq, ack_seq, reply_flags = ack_seq, 0, tcp.TCPHDR_RST
    else:
        payload = skb.tail - th - tcp.DATA_OFFSET_LEN[doff]
        seq, ack_seq = 0, (seq + payload + bool(flags & tcp.TCPHDR_SYN) + bool(flags & tcp.TCPHDR_FIN)) & 0xFFFFFFFF
        reply_flags = tcp.TCPHDR_RST | tcp.TCPHDR_ACK
    net = skb.net
    saddr, daddr = ipv6.ADDRS.unpack_from(buf, nh)
    rt = route6.ip6_route_output(net, saddr)
    if rt.error:
        return
    segment = bytearray(tcp.HEADER.pack(dport, sport, seq, ack_seq, (tcp.TCP_HLEN // 4) << 4, reply_flags, 0, 0, 0))
    BE16.pack_into(segment, tcp.CHECK, checksum(segment, pseudo_header_sum(daddr, saddr, IPPROTO_TCP, len(segment))))
    header = ipv6.build_header(daddr, saddr, IPPROTO_TCP, len(segment), ip6_output.ip6_dst_hoplimit(rt))
    reply = alloc_skb(bytes(header + segment))
    reply.net, reply.dst, reply.dev = net, rt, rt.dev
    reply.network_header, reply.transport_header = reply.data, reply.data + ipv6.IPV6_HLEN
    net.tracer.start(reply, f"nf_send_reset6: {ipv6.Ipv6Packet(reply.buf, reply.data).summary()}", parent=skb)
    ip6_output.ip6_local_out(reply)
