"""ICMP (net/ipv4/icmp.c, net/ipv4/inetpeer.c): receive, echo reply, errors, rate limits.

icmp_send() builds an error about a packet the way __icmp_send() does: no error
about a non-first fragment, a link-level broadcast/multicast, a broadcast route
or another ICMP error; at most 576 bytes; the source is the packet's local
destination, else chosen by the route back. Two limits apply, as in the kernel:
the namespace-wide icmp_msgs_per_sec/burst credit (random consumption of 0-2 per
message) and the per-destination inet_peer token bucket (icmp_ratelimit, burst
factor 6), both only for the types in icmp_ratemask; frag-needed is never limited.
icmp_rcv() treats a multicast route as a broadcast one (RTCF_BROADCAST |
RTCF_MULTICAST): echo and timestamp requests are ignored while
icmp_echo_ignore_broadcasts is 1 (INVALID_PROTO), and only echo, timestamp and
address mask messages are taken; an echo reply to one comes from the address
fib_compute_spec_dst() picks on the receiving device.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.dev import local_bh_disabled
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.core.snmp import (ICMP_MIB_CSUMERRORS, ICMP_MIB_INERRORS, ICMP_MIB_INMSGS, ICMP_MIB_OUTMSGS,
                                          ICMP_MIB_RATELIMITGLOBAL, ICMP_MIB_RATELIMITHOST, ICMPMSG_OUT)
from harness.mockkernel.ipv4 import ip_options, ip_output, ping, route
from harness.mockkernel.ipv4.route import DST_LOCAL
from harness.mockkernel.net import RTN_LOCAL
from harness.mockkernel.netfilter.core import nf_ct_attach
from harness.mockkernel.wire import WireError
from harness.mockkernel.wire.icmp import (ERROR_TYPES, ICMP_ADDRESS, ICMP_ADDRESSREPLY, ICMP_DEST_UNREACH,
                                          ICMP_ECHO, ICMP_ECHOREPLY, ICMP_FRAG_NEEDED, ICMP_HLEN, ICMP_TIMESTAMP,
                                          IcmpMessage, build, fill_checksum, timestamp_reply)
from harness.mockkernel.wire.ipv4 import (IP_OFFSET, IPPROTO_ICMP, IPTOS_TOS_MASK, IPV4_MIN_HLEN, Ipv4Packet,
                                          build_header)
from harness.mockkernel.wire.ipv4 import fill_checksum as fill_header_checksum

NR_ICMP_TYPES = 18
XRLIM_BURST_FACTOR = 6
IPTOS_PREC_INTERNETCONTROL = 0xC0


@dataclass
class InetPeer:
    """struct inet_peer: a new peer's rate_last is 60 s back, so its first
    token computation starts at the cap (inet_getpeer)."""

    rate_tokens: float
    rate_last: float


def inet_getpeer(net, addr: int) -> InetPeer:
    peer = net.inet_peers.get(addr)
    if peer is None:
        peer = net.inet_peers[addr] = InetPeer(0.0, net.clock.now - 60.0)
    return peer


def peer_allow(net, addr: int, cost: float, burst: float) -> bool:
    """The token bucket of route.c ip_error(): tokens accrue with time up to
    `burst`, each message costs `cost`."""
    peer = inet_getpeer(net, addr)
    now = net.clock.now
    peer.rate_tokens = min(peer.rate_tokens + now - peer.rate_last, burst)
    peer.rate_last = now
    if peer.rate_tokens >= cost:
        peer.rate_tokens -= cost
        return True
    return False


def inet_peer_xrlim_allow(net, addr: int, timeout: float) -> bool:
    return peer_allow(net, addr, timeout, XRLIM_BURST_FACTOR * timeout)


def icmpv4_mask_allow(net, icmp_type: int, code: int) -> bool:
    """True when the message is exempt from rate limiting."""
    if icmp_type > NR_ICMP_TYPES:
        return True
    if icmp_type == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
        return True
    return not (1 << icmp_type) & net.sysctl.values["net.ipv4.icmp_ratemask"]


def icmp_global_allow(net) -> bool:
    now = net.clock.now
    delta = min(now - net.icmp_global_stamp, 1.0)
    if delta >= 0.02:
        incr = int(net.sysctl.values["net.ipv4.icmp_msgs_per_sec"] * delta)
        if incr:
            net.icmp_global_stamp = now
            net.icmp_global_credit = min(net.icmp_global_credit + incr,
                                         net.sysctl.values["net.ipv4.icmp_msgs_burst"])
    return net.icmp_global_credit > 0


def icmp_global_consume(net) -> None:
    net.icmp_global_credit -= net.random.randrange(3)


def _rate_limited(net, icmp_type: int, code: int, daddr: int, out_dev) -> bool:
    """icmpv4_global_allow() then icmpv4_xrlim_allow(); True when suppressed."""
    if icmpv4_mask_allow(net, icmp_type, code):
        return False
    if not icmp_global_allow(net):
        net.mib.icmp_statistics[ICMP_MIB_RATELIMITGLOBAL] += 1
        return True
    if out_dev is not None and out_dev.is_loopback:
        return False
    if not inet_peer_xrlim_allow(net, daddr, net.sysctl.values["net.ipv4.icmp_ratelimit"] / 1000):
        net.mib.icmp_statistics[ICMP_MIB_RATELIMITHOST] += 1
        return True
    icmp_global_consume(net)
    return False


def icmp_send(skb_in: SkBuff, icmp_type: int, code: int, info: int = 0) -> None:
    """__icmp_send(): an ICMP error about `skb_in`, sent as a child of its journey.
    Nothing while ICMP is sending already (icmp_xmit_lock(): the trylock of the
    per-CPU ipv4_icmp_sk fails, as for a reject in OUTPUT of ICMP's own message)."""
    net, rt = skb_in.net, skb_in.dst
    iph = Ipv4Packet(skb_in.buf, skb_in.network_header)
    if rt is None or skb_in.pkt_type != PACKET_HOST or rt.is_broadcast or rt.is_multicast:
        return
    if iph.frag_off & IP_OFFSET:
        return
    if icmp_type in ERROR_TYPES and iph.protocol == IPPROTO_ICMP:
        inner = iph.payload_offset
        if inner >= skb_in.tail:
            return
        inner_type = IcmpMessage(skb_in.buf, inner).type
        if inner_type > NR_ICMP_TYPES or inner_type in ERROR_TYPES:
            return
    if net.icmp_xmit_locked:
        return
    # RTCF_LOCAL: the packet's input route was local, or (a reject in PREROUTING, whose
    # nf_reject_fill_skb_dst() gave it the output route to its sender) its sender is
    # local; then the error comes from the address the packet was sent to, and
    # icmp_route_lookup()'s ip_route_output_key_hash_rcu() refuses a source that is no
    # local address (__ip_dev_find(): -ENETUNREACH): nothing is sent
    saddr = iph.daddr if rt.input is DST_LOCAL or rt.type is RTN_LOCAL else 0
    if saddr and not _is_local_address(net, saddr):
        return
    out = route.ip_route_output(net, iph.saddr, saddr, tos=iph.tos & IPTOS_TOS_MASK)
    if isinstance(out, int):
        return
    if _rate_limited(net, icmp_type, code, iph.saddr, out.dev):
        net.tracer.hop(skb_in, Stage.L4, "icmp_send", "RATELIMITED", f"type {icmp_type} code {code}")
        return
    options = ip_options.ip_options_echo_skb(skb_in)
    if options is None:
        return
    room = min(out.dst_mtu(), 576) - IPV4_MIN_HLEN - options.optlen - ICMP_HLEN
    quoted = bytes(skb_in.buf[skb_in.network_header:skb_in.tail][:room])
    tos = (iph.tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL
    message = build(icmp_type, code, info, quoted)
    _icmp_push(net, skb_in, out, message, tos, f"icmp_send type {icmp_type} code {code}", options)


def _is_local_address(net, addr: int) -> bool:
    """__ip_dev_find(): an address of the namespace's own (a local route's too)."""
    res = route.fib_lookup(net, addr)
    return not isinstance(res, int) and res.type is RTN_LOCAL


def _icmp_push(net, cause: SkBuff, out: route.Rtable, message: bytes, tos: int, why: str,
               options: ip_options.IpOptions = ip_options.NO_OPTIONS) -> None:
    """icmp_push_reply(): the icmp socket sends with IP_PMTUDISC_DONT (no DF,
    so a hashed IP ID) and the default TTL, with the options echoed from the
    packet answered (ip_options_build()); icmp_out_count() counts it. An error
    takes the conntrack entry of the packet it answers (icmp_glue_bits():
    nf_ct_attach()), so NAT translates it even by an entry never confirmed (the
    packet dropped before POSTROUTING). It sends
    holding icmp_xmit_lock() with BHs off: what it sends through lo comes in
    once the lock is let go (icmp_xmit_unlock() before local_bh_enable()). To a
    sender of 0.0.0.0 the message goes to the route's source: the flow's
    destination ip_route_output_key_hash_rcu() filled in (Rtable.daddr), which
    __ip_make_skb() copies into the header (ip_copy_addrs())."""
    net.mib.icmpmsg_statistics[ICMPMSG_OUT | message[0]] += 1
    net.mib.icmp_statistics[ICMP_MIB_OUTMSGS] += 1
    ttl = net.sysctl.values["net.ipv4.ip_default_ttl"]
    header = build_header(out.prefsrc, out.daddr, IPPROTO_ICMP, len(message), ttl=ttl, tos=tos,
                          ident=ip_output.ip_select_ident(net, df=False, ignore_df=True), options=options.data)
    if options.optlen:
        ip_options.ip_options_build(header, options, out.prefsrc, net.clock.now)
        fill_header_checksum(header, 0)
    skb = alloc_skb(header + message)
    skb.net, skb.dst, skb.dev = net, out, out.dev
    skb.network_header = skb.data
    skb.transport_header = skb.data + len(header)
    if message[0] in ERROR_TYPES:  # icmp_glue_bits()
        nf_ct_attach(skb, cause)
    net.tracer.start(skb, f"{why}: {Ipv4Packet(skb.buf, skb.data).summary()}", parent=cause)
    with local_bh_disabled(net):
        net.icmp_xmit_locked = True
        try:
            ip_output.ip_local_out(skb)
        finally:
            net.icmp_xmit_locked = False


def icmp_rcv(skb: SkBuff) -> None:
    """icmp_rcv(): InMsgs for every message, then per type; a bad checksum is
    InCsumErrors and InErrors, any other refusal InErrors. The checksum is
    validated over what there is before the header is pulled
    (skb_checksum_simple_validate() before pskb_pull(skb, sizeof(*icmph))): a
    message shorter than its 8-byte header with a wrong sum is ICMP_CSUM, and
    NOT_SPECIFIED only if its few bytes happen to sum right."""
    net = skb.net
    mib = net.mib.icmp_statistics
    mib[ICMP_MIB_INMSGS] += 1
    icmph = IcmpMessage(skb.buf, skb.data)
    if not icmph.checksum_ok(skb.tail):
        mib[ICMP_MIB_CSUMERRORS] += 1
        mib[ICMP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.ICMP_CSUM, Stage.L4, "icmp_rcv")
    try:
        icmph.check_len(skb.tail)
    except WireError:
        mib[ICMP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "icmp_rcv")
    icmp_type = icmph.type
    net.mib.icmpmsg_statistics[icmp_type] += 1
    net.tracer.hop(skb, Stage.L4, "icmp_rcv", "", f"type {icmp_type} code {icmph.code}")
    if icmp_type > NR_ICMP_TYPES:
        mib[ICMP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.UNHANDLED_PROTO, Stage.L4, "icmp_rcv")
    rt = skb.dst
    if rt.is_broadcast or rt.is_multicast:
        if icmp_type in (ICMP_ECHO, ICMP_TIMESTAMP) and net.sysctl.values["net.ipv4.icmp_echo_ignore_broadcasts"]:
            mib[ICMP_MIB_INERRORS] += 1
            return kfree_skb(skb, DropReason.INVALID_PROTO, Stage.L4, "icmp_rcv")
        if icmp_type not in (ICMP_ECHO, ICMP_TIMESTAMP, ICMP_ADDRESS, ICMP_ADDRESSREPLY):
            mib[ICMP_MIB_INERRORS] += 1
            return kfree_skb(skb, DropReason.INVALID_PROTO, Stage.L4, "icmp_rcv")
    if icmp_type == ICMP_ECHO:
        icmp_echo(skb)
    elif icmp_type == ICMP_TIMESTAMP:
        icmp_timestamp(skb)
    elif icmp_type == ICMP_ECHOREPLY:
        ping.ping_rcv(skb)
    else:
        net.tracer.hop(skb, Stage.L4, "icmp_rcv", "CONSUMED")


# icmp_push_reply() folds the sum icmp_glue_bits() took with csum_partial_copy_nocheck(),
# which on x86 starts from ~0 (arch/x86/lib/csum-copy_64.S since 5.10): a message
# summing to zero (an echo reply of type 0, id 0, seq 0, no data) gets 0x0000, not 0xFFFF.
CSUM_COPY_SEED = 0xFFFF


def icmp_echo(skb: SkBuff) -> None:
    """icmp_echo() + icmp_reply(): the same ICMP body back, type 0, from the
    address the request was sent to, with the request's TOS."""
    if skb.net.sysctl.values["net.ipv4.icmp_echo_ignore_all"]:
        return
    body = bytearray(skb.buf[skb.data:skb.tail])
    IcmpMessage(body, 0).type = ICMP_ECHOREPLY
    icmp_reply(skb, body, "icmp_echo", "icmp_reply echo")


def icmp_timestamp(skb: SkBuff) -> None:
    """icmp_timestamp() (net/ipv4/icmp.c): fewer than 4 bytes after the header is
    PKT_TOO_SMALL (InErrors); else icmp_reply() of the header as a timestamp reply,
    the request's originate time and the time now, in milliseconds since midnight
    UTC (inet_current_timestamp(); the mock's virtual clock), as receive and
    transmit time. icmp_echo_ignore_all does not apply."""
    net = skb.net
    if skb.tail - skb.data - ICMP_HLEN < 4:
        net.mib.icmp_statistics[ICMP_MIB_INERRORS] += 1
        return kfree_skb(skb, DropReason.PKT_TOO_SMALL, Stage.L4, "icmp_rcv")
    now_ms = int(net.clock.now * 1000) % ip_options.MS_PER_DAY
    icmp_reply(skb, timestamp_reply(skb.buf, skb.data, now_ms), "icmp_timestamp", "icmp_reply timestamp")


def icmp_reply(skb: SkBuff, body: bytearray, sender: str, what: str) -> None:
    """icmp_reply(): `body` (its checksum filled here) back to the sender from the
    address the request was sent to, with the request's TOS and its options echoed;
    `sender` the function that answers, `what` the reply's journey label."""
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    fill_checksum(body, 0, len(body), initial=CSUM_COPY_SEED)
    if net.icmp_xmit_locked:  # icmp_xmit_lock()
        return
    rt = skb.dst
    spec_dst = iph.daddr if not (rt.is_broadcast or rt.is_multicast) else route.fib_compute_spec_dst(
        net, skb.dev, iph.saddr, iph.tos & 0xFC)
    out = route.ip_route_output(net, iph.saddr, spec_dst, tos=iph.tos & 0xFC)
    if isinstance(out, int):
        return
    if _rate_limited(net, IcmpMessage(body, 0).type, 0, iph.saddr, out.dev):
        return
    options = ip_options.ip_options_echo_skb(skb)
    if options is None:
        return
    net.tracer.hop(skb, Stage.L4, sender, "REPLY")
    _icmp_push(net, skb, out, bytes(body), iph.tos, what, options)


def icmp_init(net) -> None:
    """ICMP's sender for the modules this one sends through (ip_output's
    fragmentation, arp's failed neighbours, udp's port unreachable): they call
    net.icmp_send(), as code that cannot depend on IPv6's ICMP module calls
    icmpv6_send() through inet6_register_icmp_sender()."""
    net.icmp_send = icmp_send
