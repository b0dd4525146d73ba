"""UDP over IPv6 (net/ipv6/udp.c): receive, sockets, send.

__udp6_lib_rcv(): a header cut short is NOT_SPECIFIED, a length over the
packet or under the header PKT_TOO_SMALL (a length 0 is a jumbogram's: the
packet's); a datagram for a bound socket is queued (a zero checksum refused
as UDP_CSUM: the sockets here do not take RFC 6936's); to a port nobody
listens on it is NO_SOCKET, answered with ICMPv6 port unreachable only when
its checksum is there and verifies (a zero or bad one is dropped silently,
still NO_SOCKET: the reason was set before the checks). A datagram of at
most 76 bytes (CHECKSUM_BREAK) has its checksum verified first of all, by
udp6_csum_init(): a bad one is UDP_CSUM, whatever the port. A multicast
datagram goes to the sockets bound to its port (__udp6_lib_mcast_deliver()),
none: freed, no ICMP. Sockets share the UDP table with IPv4 (udp_table),
keyed by (16-byte address, port); one bound to :: takes any destination.
udpv6_sendmsg(): the source from ip6_dst_lookup(), the checksum over the
pseudo-header (0 sent as 0xFFFF), a datagram over the path MTU fragmented
by the stack (IPV6_PMTUDISC_WANT: ignore_df), hop limit of the device conf.
Left out: dual-stack (v4-mapped) sockets, connected sockets, SO_BINDTODEVICE,
UDP-Lite, GSO. The Udp6 counters are counted as udpv6_rcv(), recvmsg and sendmsg count them.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.snmp import (UDP_MIB_CSUMERRORS, UDP_MIB_IGNOREDMULTI, UDP_MIB_INDATAGRAMS,
                                          UDP_MIB_INERRORS, UDP_MIB_NOPORTS, UDP_MIB_OUTDATAGRAMS)
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb, skb_clone
from harness.mockkernel.ipv4.udp import UdpSock, __udp_enqueue_schedule_skb
from harness.mockkernel.ipv6 import ip6_output
from harness.mockkernel.ipv6.protocol import inet6_add_protocol
from harness.mockkernel.wire import ipv6
from harness.mockkernel.wire import udp as wire_udp
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.icmpv6 import ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH
from harness.mockkernel.wire.ipv6 import ADDRS, ANY, IPV6_HLEN, NEXTHDR_UDP, build_header

SOCKET_STAGE = Stage.SOCKET
# udp6_csum_init() -> __skb_checksum_validate_complete(): a datagram this short is verified at
# once (a bad one is UDP_CSUM before any lookup); a longer one only when it is read or answered
CHECKSUM_BREAK = 76


def udp6_checksum_ok(buf: bytearray, nh: int, uh: int, length: int) -> bool:
    """udp_lib_checksum_complete() == 0 against the IPv6 pseudo-header."""
    return checksum(memoryview(buf)[uh:uh + length], ipv6.pseudo_header_sum(buf, nh, NEXTHDR_UDP, length)) == 0


def udp6_lookup(net, daddr: bytes, dport: int) -> UdpSock | None:
    return net.udp_sockets.get((daddr, dport)) or net.udp_sockets.get((ANY, dport))


def udpv6_rcv(skb: SkBuff) -> bool:
    net = skb.net
    buf, uh, nh = skb.buf, skb.transport_header, skb.network_header
    stats = net.mib.udp_stats_in6
    if skb.tail - uh < wire_udp.UDP_HLEN:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "__udp6_lib_rcv")
        return False
    _, dport, ulen, check = wire_udp.unpack(buf, uh)
    if ulen > skb.tail - uh:
        stats[UDP_MIB_INERRORS] += 1  # short_packet
        kfree_skb(skb, DropReason.PKT_TOO_SMALL, Stage.L4, "__udp6_lib_rcv")
        return False
    ulen = ulen or skb.tail - uh
    if ulen < wire_udp.UDP_HLEN:
        stats[UDP_MIB_INERRORS] += 1
        kfree_skb(skb, DropReason.PKT_TOO_SMALL, Stage.L4, "__udp6_lib_rcv")
        return False
    skb.tail = uh + ulen
    if check and ulen <= CHECKSUM_BREAK and not udp6_checksum_ok(buf, nh, uh, ulen):
        _csum_error(stats)
        kfree_skb(skb, DropReason.UDP_CSUM, Stage.L4, "__udp6_lib_rcv")
        return False
    daddr = ADDRS.unpack_from(buf, nh)[1]
    if daddr[0] == 0xFF:
        __udp6_lib_mcast_deliver(skb, daddr, dport)
        return False
    sk = udp6_lookup(net, daddr, dport)
    if sk is not None:
        if not check:
            _csum_error(stats)
            kfree_skb(skb, DropReason.UDP_CSUM, Stage.L4, "__udp6_lib_rcv")
            return False
        net.tracer.hop(skb, Stage.L4, "__udp6_lib_rcv", "", f"dport {dport}")
        udpv6_queue_rcv_skb(sk, skb)
        return False
    net.tracer.hop(skb, Stage.L4, "__udp6_lib_rcv", "", f"dport {dport} no socket")
    if check and udp6_checksum_ok(buf, nh, uh, ulen):
        stats[UDP_MIB_NOPORTS] += 1
        net.ipv6.icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0)
    else:
        _csum_error(stats)
    kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, "__udp6_lib_rcv")
    return False


def _csum_error(stats: list[int]) -> None:
    """__udp6_lib_rcv()'s csum_error: InCsumErrors and InErrors."""
    stats[UDP_MIB_CSUMERRORS] += 1
    stats[UDP_MIB_INERRORS] += 1


def __udp6_lib_mcast_deliver(skb: SkBuff, daddr: bytes, dport: int) -> None:
    net = skb.net
    socks = [sk for sk in map(net.udp_sockets.get, ((daddr, dport), (ANY, dport))) if sk is not None]
    if not socks:
        net.mib.udp_stats_in6[UDP_MIB_IGNOREDMULTI] += 1
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "__udp6_lib_rcv")
    for sk in socks[:-1]:
        udpv6_queue_rcv_skb(sk, skb_clone(skb))
    udpv6_queue_rcv_skb(socks[-1], skb)


def udpv6_queue_rcv_skb(sk: UdpSock, skb: SkBuff) -> None:
    skb.data = skb.transport_header
    __udp_enqueue_schedule_skb(sk, skb, skb.net.mib.udp_stats_in6, "udpv6_queue_rcv_one_skb", "udp6")


def udpv6_recvmsg(sk: UdpSock) -> tuple[bytes, tuple[bytes, int]] | None:
    """The next datagram whose checksum verifies, with its source; None if empty."""
    while sk.queue:
        skb = sk.queue.popleft()
        sk.rmem_alloc -= skb.truesize
        buf, nh, uh = skb.buf, skb.network_header, skb.data
        stats = skb.net.mib.udp_stats_in6
        if not udp6_checksum_ok(buf, nh, uh, skb.tail - uh):
            sk.drops += 1
            _csum_error(stats)
            kfree_skb(skb, DropReason.UDP_CSUM, SOCKET_STAGE, "udpv6_recvmsg")
            continue
        stats[UDP_MIB_INDATAGRAMS] += 1
        return bytes(buf[uh + wire_udp.UDP_HLEN:skb.tail]), (ADDRS.unpack_from(buf, nh)[0], wire_udp.unpack(buf, uh)[0])
    return None


def udpv6_sendmsg(net, sk: UdpSock, payload: bytes, daddr: bytes, dport: int) -> None:
    looked_up = ip6_output.ip6_dst_lookup(net, daddr, sk.addr if sk.addr != ANY else None)
    if looked_up.__class__ is int:
        raise OSError(looked_up, f"sendto: no route to {ipv6.addr_str(daddr)}")
    rt, saddr = looked_up
    length = wire_udp.UDP_HLEN + len(payload)
    seg = bytearray(wire_udp.HEADER.pack(sk.port, dport, length, 0)) + payload
    csum = checksum(seg, ipv6.addrs_pseudo_header_sum(saddr, daddr, NEXTHDR_UDP, length)) or 0xFFFF
    wire_udp.HEADER.pack_into(seg, 0, sk.port, dport, length, csum)
    header = build_header(saddr, daddr, NEXTHDR_UDP, len(seg), ip6_output.ip6_dst_hoplimit(rt))
    skb = alloc_skb(header + seg)
    skb.net, skb.dst, skb.dev = net, rt, rt.dev
    skb.network_header, skb.transport_header = skb.data, skb.data + IPV6_HLEN
    skb.ignore_df = True
    net.tracer.start(skb, f"udpv6_sendmsg: {ipv6.Ipv6Packet(skb.buf, skb.data).summary()}")
    net.tracer.hop(skb, SOCKET_STAGE, f"udp6 {sk.port}", "SENDMSG")
    net.mib.udp_stats_in6[UDP_MIB_OUTDATAGRAMS] += 1
    ip6_output.ip6_local_out(skb)


def udpv6_init() -> None:
    inet6_add_protocol(udpv6_rcv, NEXTHDR_UDP)
