"""ICMP ping sockets (net/ipv4/ping.c): SOCK_DGRAM + IPPROTO_ICMP.

The socket's bound "port" is the echo identifier: ping_v4_sendmsg() overwrites
the id of the echo request the application writes and fills in the checksum;
ping_rcv() delivers echo replies carrying that id, else the reply is dropped
(NO_SOCKET). Receive buffers are accounted as for UDP.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.ipv4 import ip_output, route
from harness.mockkernel.ipv4.udp import UdpSock, udp_queue_rcv_skb
from harness.mockkernel.wire import icmp
from harness.mockkernel.wire.icmp import ICMP_ECHO, IcmpMessage
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_ICMP, IPV4_MIN_HLEN, Ipv4Packet, build_header


def ping_rcv(skb: SkBuff) -> None:
    net = skb.net
    ident = icmp.echo_id(skb.buf, skb.data)
    sk = net.ping_sockets.get(ident)
    if sk is None:
        return kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, "ping_rcv")
    udp_queue_rcv_skb(sk, skb)


def ping_recvmsg(sk: UdpSock) -> tuple[bytes, tuple[int, int]] | None:
    if not sk.queue:
        return None
    skb = sk.queue.popleft()
    sk.rmem_alloc -= skb.truesize
    return bytes(skb.buf[skb.data:skb.tail]), (Ipv4Packet(skb.buf, skb.network_header).saddr, 0)


def ping_v4_sendmsg(net, sk: UdpSock, message: bytes, daddr: int) -> None:
    if len(message) < icmp.ICMP_HLEN or IcmpMessage(message, 0).type != ICMP_ECHO:
        raise OSError(22, "ping socket: message must be an ICMP echo request (type 8)")
    rt = route.ip_route_output(net, daddr, sk.addr)
    if isinstance(rt, int):
        raise OSError(rt, f"sendto: no route to {daddr:#x}")
    body = bytearray(message)
    IcmpMessage(body, 0).echo_id = sk.port
    icmp.fill_checksum(body, 0, len(body))
    saddr, daddr = rt.prefsrc, rt.daddr  # the flow as routed (ping_v4_sendmsg() builds from fl4)
    fits = IPV4_MIN_HLEN + len(body) <= rt.dst_mtu()
    header = build_header(saddr, daddr, IPPROTO_ICMP, len(body),
                          ttl=net.sysctl.values["net.ipv4.ip_default_ttl"],
                          frag_off=IP_DF if fits else 0, ident=ip_output.ip_select_ident(net, df=fits, ignore_df=True))
    skb = alloc_skb(header + body)
    skb.net, skb.dst, skb.dev, skb.sk = net, rt, rt.dev, sk  # skb_set_owner_w()
    skb.network_header, skb.transport_header = skb.data, skb.data + len(header)
    skb.ignore_df = True
    net.tracer.start(skb, f"ping_v4_sendmsg: {Ipv4Packet(skb.buf, skb.data).summary()}")
    ip_output.ip_local_out(skb)
