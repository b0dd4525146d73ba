"""UDP (net/ipv4/udp.c): receive, socket lookup and receive buffers, send.

__udp4_lib_rcv(): a datagram shorter than its header or its own length is
PKT_TOO_SMALL; to a port nobody listens on it is checksum-checked (UDP_CSUM,
silently) and answered with ICMP port unreachable (NO_SOCKET). Delivered
datagrams are charged to the socket by truesize; __udp_enqueue_schedule_skb()
refuses one whose truesize would take sk_rmem_alloc past sk_rcvbuf unless the
queue is empty (6.18: one always fits; SOCKET_RCVBUFF, the socket's drop
counter rises). As on Linux, the
checksum of a datagram queued to a socket is verified when it is read.
__udp4_lib_mcast_deliver(): a datagram on a broadcast or multicast route goes
to every socket on its port bound to its destination or to 0.0.0.0, each
getting its own clone; with none it is freed (NOT_SPECIFIED, no ICMP). Left
out there: connected sockets' peer checks, SO_BINDTODEVICE, a socket's own
memberships and IP_MULTICAST_ALL (every socket here has no membership and
IP_MULTICAST_ALL on, so ip_mc_sf_allow() passes).
udp_sendmsg(): DF when the datagram fits the path MTU (IP_PMTUDISC_WANT), else
sent without DF and fragmented; WANT also sets ignore_df, so an unconnected
socket's datagrams take their IP ID from the hashed generator even with DF.
SNMP as udp.c counts: NoPorts, InErrors (with InCsumErrors or RcvbufErrors),
IgnoredMulti for a broadcast or multicast datagram nobody takes, InDatagrams
when the application reads a datagram (udp_recvmsg()), OutDatagrams when one is
sent, OutNoRoutes (an IP counter) when the sender has no route.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb, skb_clone
from harness.mockkernel.core.snmp import (IPSTATS_MIB_OUTNOROUTES, SNMP4_UDP_LIST, UDP_MIB_CSUMERRORS,
                                          UDP_MIB_INDATAGRAMS, UDP_MIB_INERRORS, UDP_MIB_NOPORTS,
                                          UDP_MIB_OUTDATAGRAMS, UDP_MIB_RCVBUFERRORS)
from harness.mockkernel.ipv4 import ip_output, route
from harness.mockkernel.wire import WireError, ipv4
from harness.mockkernel.wire import udp as wire_udp
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH, ICMP_PORT_UNREACH
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_UDP, Ipv4Packet, build_header

SOCK_MIN_RCVBUF = 2 * (2048 + 256)
SOCKET_STAGE = Stage.SOCKET  # bound once (per packet: see Stage)
UDP_MIB_IGNOREDMULTI = SNMP4_UDP_LIST.index("IgnoredMulti")


@dataclass
class UdpSock:
    """struct udp_sock: bound address and port, receive queue and accounting."""

    addr: int
    port: int
    rcvbuf: int
    queue: deque = field(default_factory=deque)
    rmem_alloc: int = 0
    drops: int = 0

    @cached_property
    def rcv_hop(self) -> Hop:
        return Hop(Stage.L4, "__udp4_lib_rcv", "", f"dport {self.port}")


def sock_set_rcvbuf(net, requested: int) -> int:
    """SO_RCVBUF: clamped to rmem_max, doubled for overhead, at least SOCK_MIN_RCVBUF."""
    value = min(requested, net.sysctl.values["net.core.rmem_max"])
    return max(value * 2, SOCK_MIN_RCVBUF)


def udp_lookup(net, daddr: int, dport: int) -> UdpSock | None:
    return net.udp_sockets.get((daddr, dport)) or net.udp_sockets.get((0, dport))


def udp_rcv(skb: SkBuff) -> None:
    """__udp4_lib_rcv(): a header cut short is NOT_SPECIFIED, a length over
    the packet or under the header PKT_TOO_SMALL."""
    net = skb.net
    buf, uh = skb.buf, skb.data
    try:
        dport, ulen = wire_udp.check_len(buf, uh, skb.tail)
    except WireError as err:
        net.mib.udp_statistics[UDP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.NOT_SPECIFIED if err.field is None else DropReason.PKT_TOO_SMALL, Stage.L4,
                         "__udp4_lib_rcv")
    skb.tail = uh + ulen
    rt = skb.dst
    if rt.is_broadcast or rt.is_multicast:
        return __udp4_lib_mcast_deliver(skb, dport)
    nh = skb.network_header
    sk = udp_lookup(net, ipv4.DADDR_FIELD.unpack_from(buf, nh)[0], dport)
    if sk is not None:
        journey = skb.journey
        if journey is not None:
            journey.hops.append(sk.rcv_hop)
        return udp_queue_rcv_skb(sk, skb)
    net.tracer.hop(skb, Stage.L4, "__udp4_lib_rcv", "", f"dport {dport} no socket")
    mib = net.mib.udp_statistics
    if not wire_udp.checksum_ok(buf, nh, uh, ulen):
        mib[UDP_MIB_CSUMERRORS] += 1
        mib[UDP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.UDP_CSUM, Stage.L4, "__udp4_lib_rcv")
    mib[UDP_MIB_NOPORTS] += 1
    net.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)
    kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, "__udp4_lib_rcv")


def __udp4_lib_mcast_deliver(skb: SkBuff, dport: int) -> None:
    """Every socket on `dport` bound to the destination or to 0.0.0.0
    (__udp_is_mcast_sock()) gets a clone, the last the skb itself. The
    kernel's kfree_skb() for no socket is inlined into __udp4_lib_rcv, which
    the lab reports as the location."""
    net = skb.net
    daddr = ipv4.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    net.tracer.hop(skb, Stage.L4, "__udp4_lib_mcast_deliver", "", f"dport {dport}")
    bound = ((daddr, dport), (0, dport)) if daddr else ((0, dport),)
    socks = [sk for sk in map(net.udp_sockets.get, bound) if sk is not None]
    if not socks:
        net.mib.udp_statistics[UDP_MIB_IGNOREDMULTI] += 1
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "__udp4_lib_rcv")
    for sk in socks[:-1]:
        udp_queue_rcv_skb(sk, skb_clone(skb))
    udp_queue_rcv_skb(socks[-1], skb)


def udp_queue_rcv_skb(sk: UdpSock, skb: SkBuff) -> None:
    __udp_enqueue_schedule_skb(sk, skb, skb.net.mib.udp_statistics, "udp_queue_rcv_one_skb", "udp")


def __udp_enqueue_schedule_skb(sk: UdpSock, skb: SkBuff, mib, where: str, proto: str) -> None:
    """__udp_enqueue_schedule_skb(), which both families call: one skb always
    fits an empty queue (the kernel's INT_MAX guard is for u32 wraparound). A
    full queue is counted in the family's `mib` and dropped at `where`, the
    family's queue function the lab reports."""
    rmem = sk.rmem_alloc
    if rmem and rmem + skb.truesize > sk.rcvbuf:
        sk.drops += 1
        mib[UDP_MIB_RCVBUFERRORS] += 1
        mib[UDP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.SOCKET_RCVBUFF, SOCKET_STAGE, where)
    sk.rmem_alloc += skb.truesize
    sk.queue.append(skb)
    skb.net.tracer.hop(skb, SOCKET_STAGE, f"{proto} {sk.port}", "QUEUED", f"rmem {sk.rmem_alloc}/{sk.rcvbuf}")


def udp_recvmsg(sk: UdpSock) -> tuple[bytes, tuple[int, int]] | None:
    """The next datagram whose checksum verifies, with its source; None if empty."""
    while sk.queue:
        skb = sk.queue.popleft()
        sk.rmem_alloc -= skb.truesize
        buf, nh, uh = skb.buf, skb.network_header, skb.data
        mib = skb.net.mib.udp_statistics
        if not wire_udp.checksum_ok(buf, nh, uh, skb.tail - uh):
            sk.drops += 1
            mib[UDP_MIB_CSUMERRORS] += 1
            mib[UDP_MIB_INERRORS] += 1
            kfree_skb(skb, DropReason.UDP_CSUM, Stage.SOCKET, "udp_recvmsg")
            continue
        sport = wire_udp.unpack(buf, uh)[0]
        mib[UDP_MIB_INDATAGRAMS] += 1
        return bytes(buf[uh + wire_udp.UDP_HLEN:skb.tail]), (ipv4.SADDR_FIELD.unpack_from(buf, nh)[0], sport)
    return None


def udp_sendmsg(net, sk: UdpSock, payload: bytes, daddr: int, dport: int) -> None:
    rt = route.ip_route_output(net, daddr, sk.addr)
    if isinstance(rt, int):
        net.mib.ip_statistics[IPSTATS_MIB_OUTNOROUTES] += 1
        raise OSError(rt, f"sendto: no route to {daddr:#x}")
    saddr, daddr = rt.prefsrc, rt.daddr  # the flow as routed (udp_sendmsg(): saddr = fl4->saddr, fl4->daddr)
    segment = wire_udp.build(saddr.to_bytes(4, "big"), daddr.to_bytes(4, "big"), sk.port, dport, payload)
    fits = ipv4.IPV4_MIN_HLEN + len(segment) <= rt.dst_mtu()
    header = build_header(saddr, daddr, IPPROTO_UDP, len(segment),
                          ttl=net.sysctl.values["net.ipv4.ip_default_ttl"],
                          frag_off=IP_DF if fits else 0,
                          ident=ip_output.ip_select_ident(net, df=fits, ignore_df=True))
    skb = alloc_skb(header + segment)
    skb.net, skb.dst, skb.dev, skb.sk = net, rt, rt.dev, sk  # skb_set_owner_w()
    skb.network_header, skb.transport_header = skb.data, skb.data + len(header)
    skb.ignore_df = True  # ip_sk_ignore_df(): IP_PMTUDISC_WANT lets the stack fragment
    net.tracer.start(skb, f"udp_sendmsg: {Ipv4Packet(skb.buf, skb.data).summary()}")
    net.tracer.hop(skb, Stage.SOCKET, f"udp {sk.port}", "SENDMSG")
    net.mib.udp_statistics[UDP_MIB_OUTDATAGRAMS] += 1
    ip_output.ip_local_out(skb)
