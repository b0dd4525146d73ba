"""ICMPv6 (net/ipv6/icmp.c): receive, echo reply, errors, rate limits.

icmpv6_rcv(): a bad checksum is ICMP_CSUM; an echo request is answered
(icmpv6_echo_reply()) unless net.ipv6.icmp.echo_ignore_all (or, to a
multicast group, echo_ignore_multicast), which leaves it dropped
NOT_SPECIFIED; neighbour discovery goes to ndisc_rcv() (ndisc.py); errors
are handed to the err_handler of the protocol they quote (icmpv6_notify():
TCP's tcp_v6_err(), consumed); other informational messages are consumed.
icmp6_send(): an error about a packet, never about one whose source is
unspecified or multicast, nor about an ICMPv6 error (is_ineligible()); to a
multicast destination or a frame not for this host only packet too big and
a parameter problem about an option whose type says "report even to
multicast" are sent. The source is the packet's destination when that is
this host's, else the route's preferred source, else the address
ipv6_dev_get_saddr() picks on the receiving device; at most 1280 bytes
(the quoted packet cut to 1232). Rate limits: the namespace-wide
icmp_msgs_per_sec credit shared with IPv4, then the per-destination token
bucket of net.ipv6.icmp.ratelimit (1000 ms, burst factor 6), scaled down
for wider routes (tmo >> ((128 - plen) >> 5)), both only for the types of
the ratemask (0-1,3-127: packet too big and informational messages are never
limited); nothing is limited towards lo.
Replies carry the hop limit of the egress device's conf and an automatic
flow label (auto_flowlabels 1: a keyed hash of the flow, here a seeded one).
Left out: ping sockets for IPv6, MLD, anycast sources, the ratemask sysctl
(its default is modelled), ICMP6 SNMP counters.
"""
from __future__ import annotations

import hashlib

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.snmp import (ICMP6_MIB_CSUMERRORS, ICMP6_MIB_INERRORS, ICMP6_MIB_INMSGS,
                                          ICMP6_MIB_OUTMSGS, ICMP6_MIB_RATELIMITHOST, ICMP_MIB_RATELIMITGLOBAL,
                                          ICMPMSG_OUT)
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.core.sysctl import CtlTable, proc_dointvec_ms_jiffies, proc_dou8vec_minmax
from harness.mockkernel.ipv4.icmp import icmp_global_allow, icmp_global_consume, inet_peer_xrlim_allow
from harness.mockkernel.ipv6 import addrconf, ip6_output, ndisc, route
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.ipv6.protocol import inet6_add_protocol, inet6_err_handlers
from harness.mockkernel.wire import icmpv6, ipv6
from harness.mockkernel.wire.icmpv6 import (ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_HLEN,
                                            ICMPV6_INFOMSG_MASK, ICMPV6_PARAMPROB, ICMPV6_PKT_TOOBIG,
                                            ICMPV6_UNK_OPTION, NDISC_REDIRECT, NDISC_ROUTER_SOLICITATION,
                                            Icmpv6Message)
from harness.mockkernel.wire.ipv6 import (ADDRS, IPV6_ADDR_ANY, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_MULTICAST,
                                          IPV6_HLEN, IPV6_MIN_MTU, NEXTHDR, NEXTHDR_ICMP, build_header,
                                          ipv6_addr_type)

XRLIM_BURST_FACTOR = 6
ICMPV6_MSG_MAX = 255
# net->ipv6.sysctl.icmpv6_ratemask's default, "0-1,3-127": every error but packet too big
DEFAULT_RATEMASK = frozenset(range(0, 128)) - {ICMPV6_PKT_TOOBIG}
ICMPV6_TABLE = {
    "net.ipv6.icmp.ratelimit": CtlTable(1000, proc_dointvec_ms_jiffies),
    "net.ipv6.icmp.echo_ignore_all": CtlTable(0, proc_dou8vec_minmax, 0, 255),
    "net.ipv6.icmp.echo_ignore_multicast": CtlTable(0, proc_dou8vec_minmax, 0, 255),
    "net.ipv6.icmp.echo_ignore_anycast": CtlTable(0, proc_dou8vec_minmax, 0, 255),
}


def icmpv6_global_allow(net, icmp_type: int) -> tuple[bool, bool]:
    """(allowed, whether the per-destination limit applies next)."""
    if icmp_type > ICMPV6_MSG_MAX or icmp_type not in DEFAULT_RATEMASK:
        return True, False
    if icmp_global_allow(net):
        return True, True
    net.mib.icmp_statistics[ICMP_MIB_RATELIMITGLOBAL] += 1  # IPv4's MIB: the global limit is shared
    return False, False


def icmpv6_xrlim_allow(net, rt, daddr: bytes, apply_ratelimit: bool) -> bool:
    """The per-destination token bucket, on the route towards `daddr`."""
    if not apply_ratelimit:
        return True
    if rt.error:
        return False
    if rt.dev.is_loopback:
        allowed = True
    else:
        tmo = net.sysctl.values["net.ipv6.icmp.ratelimit"]
        plen = rt.f6i.dst_len if rt.f6i is not None else 128
        if plen < 128:
            tmo >>= (128 - plen) >> 5
        allowed = inet_peer_xrlim_allow(net, daddr, tmo / 1000)
    if allowed:
        icmp_global_consume(net)
    else:
        net.mib.icmpv6_statistics[ICMP6_MIB_RATELIMITHOST] += 1
    return allowed


def ip6_make_flowlabel(net, saddr: bytes, daddr: bytes, proto: int, icmp_type: int) -> int:
    """ip6_make_flowlabel() with auto_flowlabels 1: the flow's hash, 20 bits
    (Linux keys it with a random secret; here the kernel's seeded generator)."""
    key = net.ipv6.flowlabel_secret
    if key is None:
        key = net.ipv6.flowlabel_secret = net.random.getrandbits(128).to_bytes(16, "big")
    digest = hashlib.blake2s(saddr + daddr + bytes((proto, icmp_type)), key=key, digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0xFFFFF


def _is_ineligible(skb: SkBuff) -> bool:
    """No error about an ICMPv6 error, nor about a packet cut inside its ICMPv6 header."""
    nh = skb.network_header
    offset, nexthdr, frag_off = ipv6_skip_exthdr(skb.buf, nh + IPV6_HLEN, skb.buf[nh + NEXTHDR], skb.tail)
    if offset < 0 or nexthdr != NEXTHDR_ICMP:
        return False
    if offset >= skb.tail:
        return not frag_off
    return not skb.buf[offset] & ICMPV6_INFOMSG_MASK


def _opt_unrec(skb: SkBuff, offset: int) -> bool:
    """A parameter problem about an option whose type bits are 10: reported even to multicast."""
    pos = skb.network_header + offset
    return pos >= skb.tail or ipv6.tlv_action(skb.buf[pos]) == ipv6.TLV_ACTION_REPORT


def icmp6_send(skb: SkBuff, icmp_type: int, code: int, info: int) -> None:
    """icmp6_send(): an ICMPv6 error about `skb`, a child of its journey."""
    net, nh = skb.net, skb.network_header
    if skb.tail - nh < IPV6_HLEN:
        return
    saddr, daddr = ADDRS.unpack_from(skb.buf, nh)
    reply_src = daddr if addrconf.ipv6_chk_addr(net, daddr, skb.dev) else None
    if daddr[0] == 0xFF or skb.pkt_type != PACKET_HOST:
        if icmp_type != ICMPV6_PKT_TOOBIG and not (icmp_type == ICMPV6_PARAMPROB and code == ICMPV6_UNK_OPTION
                                                   and _opt_unrec(skb, info)):
            return
        reply_src = None
    src_type = ipv6_addr_type(saddr)
    if src_type == IPV6_ADDR_ANY or src_type & IPV6_ADDR_MULTICAST or _is_ineligible(skb):
        return
    iif = skb.skb_iif or (skb.dev.ifindex if skb.dev is not None else 0)
    oif = iif if src_type & IPV6_ADDR_LINKLOCAL else None
    allowed, apply_ratelimit = (True, False) if skb.dev.is_loopback else icmpv6_global_allow(net, icmp_type)
    if not allowed:
        return _rate_limited(skb, icmp_type, code)
    rt = route.ip6_route_output(net, saddr, oif)
    if reply_src is None and (rt.error or rt.f6i is None or rt.f6i.prefsrc is None):
        in_dev = net.devices.get(iif)
        reply_src = addrconf.ipv6_dev_get_saddr(net, in_dev, saddr) if in_dev is not None else None
    if not icmpv6_xrlim_allow(net, rt, saddr, apply_ratelimit):
        return _rate_limited(skb, icmp_type, code)
    looked_up = ip6_output.ip6_dst_lookup(net, saddr, reply_src, oif)
    if looked_up.__class__ is int:
        return
    out, src = looked_up
    quoted = bytes(skb.buf[nh:skb.tail][:IPV6_MIN_MTU - IPV6_HLEN - ICMPV6_HLEN])
    message = icmpv6.build(icmp_type, code, info, quoted)
    _icmpv6_push(net, skb, out, src, saddr, message, 0, f"icmp6_send type {icmp_type} code {code}")


def _rate_limited(skb: SkBuff, icmp_type: int, code: int) -> None:
    skb.net.tracer.hop(skb, Stage.L4, "icmp6_send", "RATELIMITED", f"type {icmp_type} code {code}")


def _icmpv6_push(net, cause: SkBuff, out, saddr: bytes, daddr: bytes, message: bytearray, tclass: int,
                 why: str) -> None:
    """icmpv6_push_pending_frames(): the checksum over the pseudo-header,
    then ip6_local_out() from the ICMPv6 socket (hop limit of the route's
    device conf, automatic flow label)."""
    icmpv6.fill_checksum(message, 0, len(message),
                         ipv6.addrs_pseudo_header_sum(saddr, daddr, NEXTHDR_ICMP, len(message)))
    hop_limit = ip6_output.ip6_dst_hoplimit(out)
    flowlabel = ip6_make_flowlabel(net, saddr, daddr, NEXTHDR_ICMP, message[0])
    header = build_header(saddr, daddr, NEXTHDR_ICMP, len(message), hop_limit, tclass, flowlabel)
    net.mib.icmpv6msg_statistics[ICMPMSG_OUT | message[0]] += 1  # __ip6_make_skb(): ICMP6MSGOUT_INC_STATS()
    net.mib.icmpv6_statistics[ICMP6_MIB_OUTMSGS] += 1
    skb = alloc_skb(header + message)
    skb.net, skb.dst, skb.dev = net, out, out.dev
    skb.network_header, skb.transport_header = skb.data, skb.data + IPV6_HLEN
    net.tracer.start(skb, f"{why}: {ipv6.Ipv6Packet(skb.buf, skb.data).summary()}", parent=cause)
    ip6_output.ip6_local_out(skb)


def icmpv6_rcv(skb: SkBuff) -> bool:
    """The ICMPv6 handler of local delivery (never resubmits)."""
    net, th, nh = skb.net, skb.transport_header, skb.network_header
    msg = Icmpv6Message(skb.buf, th)
    stats = net.mib.icmpv6_statistics
    stats[ICMP6_MIB_INMSGS] += 1
    if skb.tail - th < ICMPV6_HLEN:
        stats[ICMP6_MIB_INERRORS] += 1
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "icmpv6_rcv")
        return False
    pseudo = ipv6.pseudo_header_sum(skb.buf, nh, NEXTHDR_ICMP, skb.tail - th)
    if not icmpv6.checksum_ok(skb.buf, th, skb.tail, pseudo):
        stats[ICMP6_MIB_CSUMERRORS] += 1
        stats[ICMP6_MIB_INERRORS] += 1
        kfree_skb(skb, DropReason.ICMP_CSUM, Stage.L4, "icmpv6_rcv")
        return False
    icmp_type = msg.type
    net.mib.icmpv6msg_statistics[icmp_type] += 1
    net.tracer.hop(skb, Stage.L4, "icmpv6_rcv", "", f"type {icmp_type} code {msg.code}")
    if icmp_type == ICMPV6_ECHO_REQUEST:
        if net.sysctl.values["net.ipv6.icmp.echo_ignore_all"] or not icmpv6_echo_reply(skb):
            kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "icmpv6_rcv")
        return False
    if icmp_type == ICMPV6_ECHO_REPLY:
        # ping_rcv(): a reply no ping socket takes is NO_SOCKET there (the mock has no IPv6 ping sockets)
        kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, "ping_rcv")
        return False
    if NDISC_ROUTER_SOLICITATION <= icmp_type <= NDISC_REDIRECT:
        reason = ndisc.ndisc_rcv(skb)
        if reason is not None:
            kfree_skb(skb, reason, Stage.L4, "icmpv6_rcv")
        return False
    if icmpv6.is_error(icmp_type):
        icmpv6_notify(skb, icmp_type, msg.code, msg.rest, msg.quoted_offset)
    net.tracer.hop(skb, Stage.L4, "icmpv6_rcv", "CONSUMED")
    return False


def icmpv6_notify(skb: SkBuff, icmp_type: int, code: int, info: int, quoted: int) -> None:
    """The error's err_handler of the protocol it quotes (past the quoted
    packet's extension headers), when its first 8 bytes are there."""
    buf, tail = skb.buf, skb.tail
    if tail - quoted < IPV6_HLEN:
        return
    offset, nexthdr, _ = ipv6_skip_exthdr(buf, quoted + IPV6_HLEN, buf[quoted + NEXTHDR], tail)
    err_handler = inet6_err_handlers.get(nexthdr)
    if offset < 0 or offset + 8 > tail or err_handler is None:
        return
    data = skb.data
    skb.data = quoted
    err_handler(skb, icmp_type, code, info, offset - quoted)
    skb.data = data


def icmpv6_echo_reply(skb: SkBuff) -> bool:
    """The echo back, type 129, from the address it was sent to (a group's
    reply from the receiving device's best source), with its traffic class;
    False when it is not answered."""
    net, nh = skb.net, skb.network_header
    saddr, daddr = ADDRS.unpack_from(skb.buf, nh)
    if daddr[0] == 0xFF and net.sysctl.values["net.ipv6.icmp.echo_ignore_multicast"]:
        return False
    src = daddr if daddr[0] != 0xFF else None
    oif = skb.skb_iif or None
    looked_up = ip6_output.ip6_dst_lookup(net, saddr, src, oif)
    if looked_up.__class__ is int:
        return False
    out, src = looked_up
    allowed, apply_ratelimit = (True, False) if skb.dev.is_loopback else icmpv6_global_allow(net, ICMPV6_ECHO_REPLY)
    if not allowed or not icmpv6_xrlim_allow(net, out, saddr, apply_ratelimit):
        return False
    body = bytearray(skb.buf[skb.transport_header:skb.tail])
    body[0] = ICMPV6_ECHO_REPLY
    net.tracer.hop(skb, Stage.L4, "icmpv6_echo_reply", "REPLY")
    tclass = ipv6.Ipv6Packet(skb.buf, nh).tclass
    _icmpv6_push(net, skb, out, src, saddr, body, tclass, "icmpv6_echo_reply")
    return True


def icmpv6_init(net) -> None:
    """The handler, the sysctls, and the sender the modules below ICMPv6 call
    (inet6_register_icmp_sender())."""
    inet6_add_protocol(icmpv6_rcv, NEXTHDR_ICMP)
    net.sysctl.register(ICMPV6_TABLE)
    net.ipv6.icmpv6_send = icmp6_send

