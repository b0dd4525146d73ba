"""Neighbour discovery (net/ipv6/ndisc.c): nd_tbl, NS/NA, RS/RA as a router meets them.

nd_tbl runs the neighbour core's state machine (core/neighbour.py) with
ndisc_solicit() and ndisc_error_report() and nd_tbl's parms (locktime 0).
ndisc_constructor() makes a multicast next hop's entry NOARP with its
33:33:xx:xx:xx:xx address (ndisc_mc_map()), and lo's NOARP too.

Sending (ndisc_send_skb()): the message gets its checksum, an IPv6 header
with hop limit 255, traffic class ndisc_tclass and no flow label, a route
to the destination on the device (icmp6_dst_alloc()), and goes out through
ip6_local_out() (the LOCAL_OUT hook, then POSTROUTING). A solicitation while
INCOMPLETE goes to the target's solicited-node group, a PROBE's to the
target itself; its source is the packet's source when that is an address
of the device, else the device's link-local address (without one, no
solicitation leaves: ipv6_get_lladdr() fails), with the source link-layer
address option unless the source is :: (DAD, which carries a nonce when
enhanced_dad is on). When resolution fails, the queued packets' senders get
ICMPv6 address unreachable and the packets are freed with no reason
(NOT_SPECIFIED: ndisc_error_report() calls plain kfree_skb()).

Receiving (ndisc_rcv(), from icmpv6_rcv() for types 133..137): hop limit
255 and code 0 first, then options (a zero length, or an option running
past the message, is IPV6_NDISC_BAD_OPTIONS). ndisc_recv_ns() answers an
NS for one of the device's usable addresses with an NA from that address:
to all-nodes for a DAD probe (source ::), else to the sender with S set,
O and the target link-layer address only when the NS was multicast; the
sender's entry is created or updated STALE. An NS for a tentative address
fails its DAD if it is another node's DAD probe. An NS for an address not
ours is IPV6_NDISC_NS_OTHERHOST. ndisc_recv_na() updates an existing entry
(REACHABLE when solicited, else STALE; a different address only with O)
and fails the DAD of a tentative target; an NA for no known entry is
dropped. A router (forwarding on) takes an RS's source as a STALE neighbour;
a host drops RSs. An RA (from a link-local source) updates its sender's
entry STALE as a router; with ipv6_accept_ra() (a router only with
accept_ra 2) it also configures the port: the default route through its
sender for the router lifetime, with its preference (rt6_add_dflt_router()),
the cur hop limit (conf hop_limit and the route's hoplimit metric) and the
MTU option (conf mtu and the route's mtu metric), each under its
accept_ra_* sysctl.
Returns are ndisc_rcv()'s: None when consumed, else the drop reason for
icmpv6_rcv() to free the packet with.
Proxy NDP: on a router port with proxy_ndp (or all's), an NS for an
address proxied there (`ip -6 neigh add proxy`, nd_tbl.proxies, whose
solicited-node group the port joins) is answered as for an address of ours
but never with override and with R only for a `router` entry; a multicast
one after a random delay below proxy_delay (pneigh_enqueue()).
Redirects: ndisc_send_redirect() for ip6_forward() (below).
Left out: anycast, receiving redirects (dropped as the kernel drops them
without a route; accept_redirects is not acted on), what else an RA carries (prefix information and SLAAC,
route information, reachable and retrans times, M/O flags), unsolicited NAs
(ndisc_notify).
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.snmp import ICMP6_MIB_OUTMSGS, ICMPMSG_OUT
from harness.mockkernel.core.neighbour import NeighTable, neigh_output, neigh_update
from harness.mockkernel.core.rtnetlink import neigh_table_init
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb, skb_clone
from harness.mockkernel.ipv6 import ip6_output, route
from harness.mockkernel.ipv4.icmp import inet_peer_xrlim_allow
from harness.mockkernel.ipv6.ip6_fib import ICMPV6_ROUTER_PREF_MEDIUM, RTF_GATEWAY, Fib6Info
from harness.mockkernel.ipv6.addrconf import (IFA_F_OPTIMISTIC, IFA_F_TENTATIVE, IN6ADDR_ANY, IPV6_MIN_MTU,
                                              IN6ADDR_LINKLOCAL_ALLNODES, addrconf_addr_solict_mult,
                                              addrconf_dad_failure, ipv6_chk_addr, ipv6_dev_get_saddr,
                                              ipv6_dev_mc_dec, ipv6_dev_mc_inc,
                                              ipv6_get_ifaddr, ipv6_get_lladdr)
from harness.mockkernel.net import NUD_FAILED, NUD_NOARP, NUD_PROBE, NUD_REACHABLE, NUD_STALE, NUD_VALID, Neighbour
from harness.mockkernel.wire import icmpv6
from harness.mockkernel.wire import ipv6 as wire_ipv6
from harness.mockkernel.wire.ndisc import (ND_MSG_LEN, ND_OPT_MTU, ND_OPT_NONCE, ND_OPT_SOURCE_LL_ADDR,
                                           ND_OPT_TARGET_LL_ADDR, ND_OVERRIDE, ND_ROUTER, ND_SOLICITED, RA_MSG_LEN,
                                           RD_MSG_LEN, RS_MSG_LEN, NdMsg, RaMsg, lladdr_option, nonce_option,
                                           option_lladdr, option_mtu, option_nonce, parse_options,
                                           redirected_header_option)
from harness.mockkernel.wire.ethernet import ETH_P_IPV6
from harness.mockkernel.wire.icmpv6 import (ICMPV6_ADDR_UNREACH, ICMPV6_DEST_UNREACH, NDISC_NEIGHBOUR_ADVERTISEMENT,
                                            NDISC_NEIGHBOUR_SOLICITATION, NDISC_REDIRECT, NDISC_ROUTER_ADVERTISEMENT,
                                            NDISC_ROUTER_SOLICITATION)

NDISC_HOP_LIMIT = 255
ICMPV6_ROUTER_PREF_INVALID = 0x2  # include/uapi/linux/icmpv6.h
LOCALLY_ENQUEUED = "LOCALLY_ENQUEUED"  # NEIGH_CB(skb)->flags: a proxied solicitation's delayed copy


def ndisc_mc_map(addr: bytes) -> bytes:
    """ipv6_eth_mc_map(): 33:33 and the group's last 32 bits."""
    return b"\x33\x33" + addr[12:]


def ndisc_constructor(net, dev, addr: bytes) -> Neighbour:
    """A new nd_tbl entry: NOARP with the mapped address for a multicast next
    hop or on lo, else in no state, to be resolved."""
    neigh = net.nd_tbl.create(net, dev.ifindex, addr)
    if addr[0] == 0xFF:
        neigh.state, neigh.lladdr = NUD_NOARP, ndisc_mc_map(addr)
    elif dev.is_loopback:
        neigh.state, neigh.lladdr = NUD_NOARP, dev.mac
    return neigh


def ndisc_neigh_output(skb: SkBuff, nexthop: bytes) -> None:
    """What ip6_finish_output2() does with the next hop: its entry
    (__ipv6_neigh_lookup_noref(), else __neigh_create()), then neigh_output()."""
    net, dev = skb.net, skb.dev
    neigh = net.nd_tbl.entries.get((dev.ifindex, nexthop))
    if neigh is None:
        neigh = ndisc_constructor(net, dev, nexthop)
    neigh_output(net, neigh, skb)


# sending ------------------------------------------------------------------------------
def ndisc_send_skb(net, dev, message: bytearray, daddr: bytes, saddr: bytes, why: str,
                   cause: SkBuff | None = None) -> None:
    """The checksum, ip6_nd_hdr() (hop limit 255, ndisc_tclass), the route to
    `daddr` on `dev`, the message counted out by type, then ip6_local_out()."""
    icmpv6.fill_checksum(message, 0, len(message),
                         wire_ipv6.addrs_pseudo_header_sum(saddr, daddr, wire_ipv6.IPPROTO_ICMPV6, len(message)))
    idev = dev.ip6_ptr
    header = wire_ipv6.build_header(saddr, daddr, wire_ipv6.IPPROTO_ICMPV6, len(message), NDISC_HOP_LIMIT,
                                    idev.cnf.ndisc_tclass if idev is not None else 0)
    skb = alloc_skb(header + message)
    skb.net, skb.dev, skb.protocol = net, dev, ETH_P_IPV6
    skb.network_header, skb.transport_header = skb.data, skb.data + wire_ipv6.IPV6_HLEN
    skb.dst = route.icmp6_dst_alloc(net, dev, daddr)
    net.tracer.start(skb, f"{why}: {wire_ipv6.Ipv6Packet(skb.buf, skb.data).summary()}", parent=cause)
    net.mib.icmpv6msg_statistics[ICMPMSG_OUT | message[0]] += 1
    net.mib.icmpv6_statistics[ICMP6_MIB_OUTMSGS] += 1
    ip6_output.ip6_local_out(skb)


def ndisc_send_ns(net, dev, target: bytes, daddr: bytes, saddr: bytes | None = None, nonce: bytes = b"",
                  why: str = "ndisc_send_ns") -> None:
    """A neighbour solicitation for `target`: from `saddr`, else the device's
    link-local address (none: nothing is sent); with our link-layer address
    unless from ::, and the DAD nonce if given."""
    if saddr is None:
        saddr = ipv6_get_lladdr(dev)
        if saddr is None:
            return
    message = icmpv6.build(NDISC_NEIGHBOUR_SOLICITATION, 0, 0, target)
    if saddr != IN6ADDR_ANY:
        message += lladdr_option(ND_OPT_SOURCE_LL_ADDR, dev.mac)
    if nonce:
        message += nonce_option(nonce)
    ndisc_send_skb(net, dev, message, daddr, saddr, why)


def ndisc_send_na(net, dev, daddr: bytes, target: bytes, router: bool, solicited: bool, override: bool,
                  inc_opt: bool, cause: SkBuff | None = None) -> None:
    """A neighbour advertisement for `target`, from it when it is ours."""
    ifp = ipv6_get_ifaddr(net, target, dev)
    if ifp is not None:
        saddr = target
        if ifp.flags & IFA_F_OPTIMISTIC:
            override = False
        inc_opt = inc_opt or bool(ifp.idev.cnf.force_tllao)
    else:
        saddr = ipv6_dev_get_saddr(net, dev, daddr)
        if saddr is None:
            return
    flags = (ND_ROUTER if router else 0) | (ND_SOLICITED if solicited else 0) | (ND_OVERRIDE if override else 0)
    message = icmpv6.build(NDISC_NEIGHBOUR_ADVERTISEMENT, 0, flags, target)
    if inc_opt:
        message += lladdr_option(ND_OPT_TARGET_LL_ADDR, dev.mac)
    ndisc_send_skb(net, dev, message, daddr, saddr, "ndisc_send_na", cause)


def ndisc_send_redirect(skb: SkBuff, target: bytes) -> None:
    """The redirect ip6_forward() sends the sender of `skb` (forwarded out of
    the device it came in on, skb.dev) about its destination: `target` the
    better first hop, the destination itself or a link-local router (else no
    redirect), from the device's link-local address (none: no redirect), only
    to a sender on the link (no route via a gateway to it) and at most one a
    second per sender after a burst of six; with the target's link-layer
    address when its entry is valid (the entry made if missing:
    dst_neigh_lookup()), and the packet's first bytes in a redirected header
    option, all within 1280 bytes in 8-byte units."""
    net, dev, buf, nh = skb.net, skb.dev, skb.buf, skb.network_header
    saddr = ipv6_get_lladdr(dev)
    if saddr is None:
        return
    sender, daddr = wire_ipv6.ADDRS.unpack_from(buf, nh)
    if daddr != target and wire_ipv6.ipv6_addr_type(target) != (wire_ipv6.IPV6_ADDR_UNICAST |
                                                                 wire_ipv6.IPV6_ADDR_LINKLOCAL):
        return
    back = route.ip6_route_output(net, sender, dev.ifindex)
    if back.error or (back.f6i is not None and back.f6i.flags & RTF_GATEWAY):
        return
    if not inet_peer_xrlim_allow(net, sender, ip6_output.REDIRECT_INTERVAL):
        return
    out = skb.dst.dev
    neigh = net.nd_tbl.entries.get((out.ifindex, target)) or ndisc_constructor(net, out, target)
    options = lladdr_option(ND_OPT_TARGET_LL_ADDR, neigh.lladdr) if neigh.state & NUD_VALID else b""
    rd_len = min(IPV6_MIN_MTU - wire_ipv6.IPV6_HLEN - RD_MSG_LEN - len(options), skb.tail - nh + 8) & ~7
    if rd_len:
        options += redirected_header_option(bytes(buf[nh:nh + rd_len - 8]))
    message = icmpv6.build(NDISC_REDIRECT, 0, 0, target + daddr) + options
    ndisc_send_skb(net, dev, message, sender, saddr, "ndisc_send_redirect", cause=skb)


def ndisc_solicit(net, neigh: Neighbour, skb: SkBuff | None) -> None:
    """nd_tbl's solicit: multicast to the solicited-node group while
    INCOMPLETE, unicast to the target when PROBE; from the packet's source if
    it is an address of the device."""
    dev = net.devices[neigh.ifindex]
    saddr = None
    if skb is not None:
        src = wire_ipv6.ADDRS.unpack_from(skb.buf, skb.network_header)[0]
        if ipv6_chk_addr(net, src, dev, strict=True):
            saddr = src
    daddr = neigh.ip if neigh.state == NUD_PROBE else addrconf_addr_solict_mult(neigh.ip)
    ndisc_send_ns(net, dev, neigh.ip, daddr, saddr, why=f"ndisc_solicit {'PROBE' if neigh.state == NUD_PROBE else 'INCOMPLETE'} "
                                                          f"probe {neigh.probes}")


def ndisc_error_report(net, skb: SkBuff) -> None:
    """ip6_link_failure() (the sender gets address unreachable), then a plain
    kfree_skb(): NOT_SPECIFIED, where ARP's says NEIGH_FAILED."""
    net.ipv6.icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_ADDR_UNREACH, 0)
    kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "neigh_invalidate")


# receiving ---------------------------------------------------------------------------
def _opt_lladdr(buf, options: dict[int, int], opt_type: int) -> bytes | None | bool:
    """The link-layer address an option of `opt_type` carries; None without
    one, False when its length is not an Ethernet address's."""
    off = options.get(opt_type)
    if off is None:
        return None
    return option_lladdr(buf, off) or False


def ndisc_rcv(skb: SkBuff) -> DropReason | None:
    """skb.transport_header at the ICMPv6 message, network_header at its IPv6 header."""
    if wire_ipv6.Ipv6Packet(skb.buf, skb.network_header).hop_limit != NDISC_HOP_LIMIT:
        return DropReason.IPV6_NDISC_HOP_LIMIT
    message = icmpv6.Icmpv6Message(skb.buf, skb.transport_header)
    if message.code != 0:
        return DropReason.IPV6_NDISC_BAD_CODE
    msg_type = message.type
    if msg_type == NDISC_NEIGHBOUR_SOLICITATION:
        return ndisc_recv_ns(skb)
    if msg_type == NDISC_NEIGHBOUR_ADVERTISEMENT:
        return ndisc_recv_na(skb)
    if msg_type == NDISC_ROUTER_SOLICITATION:
        return ndisc_recv_rs(skb)
    if msg_type == NDISC_ROUTER_ADVERTISEMENT:
        return ndisc_router_discovery(skb)
    return DropReason.NOT_SPECIFIED  # NDISC_REDIRECT: ndisc_redirect_rcv() finds no route to redirect


def ndisc_update(net, neigh: Neighbour, lladdr: bytes | None, state: int, override: bool) -> None:
    """__neigh_update() as ND calls it (weak override): without an address in
    the message, a valid entry keeps its own, an invalid one is left alone."""
    if lladdr is None:
        if not neigh.state & NUD_VALID:
            return
        lladdr = neigh.lladdr
    neigh_update(net, neigh, lladdr, state, override)


def _hop(skb: SkBuff, where: str, verdict: str, summary: str = "") -> None:
    skb.net.tracer.hop(skb, Stage.NEIGH, where, verdict, summary)


def ndisc_recv_ns(skb: SkBuff) -> DropReason | None:
    net, dev, buf, th = skb.net, skb.dev, skb.buf, skb.transport_header
    if skb.tail - th < ND_MSG_LEN:
        return DropReason.PKT_TOO_SMALL
    saddr, daddr = wire_ipv6.ADDRS.unpack_from(buf, skb.network_header)
    target = NdMsg(buf, th).target
    dad = saddr == IN6ADDR_ANY
    if target[0] == 0xFF or (dad and daddr[:13] != addrconf_addr_solict_mult(bytes(16))[:13]):
        return DropReason.NOT_SPECIFIED  # multicast target; DAD not to a solicited-node group
    options = parse_options(buf, th + ND_MSG_LEN, skb.tail)
    if options is None:
        return DropReason.IPV6_NDISC_BAD_OPTIONS
    lladdr = _opt_lladdr(buf, options, ND_OPT_SOURCE_LL_ADDR)
    if lladdr is False or (lladdr is not None and dad):
        return DropReason.NOT_SPECIFIED
    nonce = option_nonce(buf, options[ND_OPT_NONCE]) if ND_OPT_NONCE in options else b""
    inc = daddr[0] == 0xFF
    ifp = ipv6_get_ifaddr(net, target, dev)
    idev = dev.ip6_ptr
    if ifp is None:
        is_router = pndisc_is_router(net, target, dev) if idev is not None and idev.cnf.forwarding and (
            net.ipv6.devconf_all.proxy_ndp or idev.cnf.proxy_ndp) else None
        if is_router is None:
            _hop(skb, "ndisc_recv_ns", "OTHERHOST")
            return DropReason.IPV6_NDISC_NS_OTHERHOST
        if skb.pkt_type != PACKET_HOST and inc and not (skb.cb or {}).get(LOCALLY_ENQUEUED) and net.nd_tbl.proxy_delay:
            pneigh_enqueue(skb)
            return DropReason.NOT_SPECIFIED  # this copy; the queued one is answered later
    else:
        if ifp.flags & (IFA_F_TENTATIVE | IFA_F_OPTIMISTIC):
            if dad:
                if nonce and nonce == ifp.dad_nonce:  # our own probe, looped back
                    _hop(skb, "ndisc_recv_ns", "DAD_LOOPBACK")
                    return DropReason.NOT_SPECIFIED
                addrconf_dad_failure(net, ifp)
                _hop(skb, "ndisc_recv_ns", "DADFAILED")
                return DropReason.NOT_SPECIFIED
            if not ifp.flags & IFA_F_OPTIMISTIC:
                return DropReason.NOT_SPECIFIED
        is_router = bool(idev.cnf.forwarding)
    ours = ifp is not None  # an answer for a proxied address never overrides
    if dad:
        _hop(skb, "ndisc_recv_ns", "REPLIED", "DAD")
        ndisc_send_na(net, dev, IN6ADDR_LINKLOCAL_ALLNODES, target, is_router, False, ours, True, cause=skb)
        return None
    neigh = net.nd_tbl.entries.get((dev.ifindex, saddr))
    if neigh is None and (not inc or lladdr is not None):
        neigh = ndisc_constructor(net, dev, saddr)
    if neigh is None:
        return DropReason.NOT_SPECIFIED  # a multicast NS without the sender's address: nothing to answer to
    ndisc_update(net, neigh, lladdr, NUD_STALE, override=True)
    _hop(skb, "ndisc_recv_ns", "REPLIED", "" if ours else "proxy")
    ndisc_send_na(net, dev, saddr, target, is_router, True, ours and inc, inc, cause=skb)
    return None


def pndisc_constructor(dev, addr: bytes) -> None:
    """A proxied address's solicited-node group is joined on its device."""
    ipv6_dev_mc_inc(dev, addrconf_addr_solict_mult(addr))


def pndisc_destructor(dev, addr: bytes) -> None:
    ipv6_dev_mc_dec(dev, addrconf_addr_solict_mult(addr))


def pndisc_is_router(net, target: bytes, dev) -> bool | None:
    """Whether `target` is proxied on `dev` (None: it is not), as a router."""
    return net.nd_tbl.proxies.get((dev.ifindex, target))


def pneigh_enqueue(skb: SkBuff) -> None:
    """A solicitation for a proxied address that came to a group is answered
    after a random delay below proxy_delay (RFC 4861 7.2.8): a copy goes
    through ndisc_recv_ns() again then (pndisc_redo())."""
    net = skb.net
    copy = skb_clone(skb)
    copy.cb = {**(skb.cb or {}), LOCALLY_ENQUEUED: True}
    _hop(skb, "ndisc_recv_ns", "PROXY_QUEUED")

    def pndisc_redo() -> None:
        net.tracer.start(copy, f"pndisc_redo: {wire_ipv6.Ipv6Packet(copy.buf, copy.network_header).summary()}",
                         parent=skb)
        reason = ndisc_recv_ns(copy)
        if reason is not None:
            kfree_skb(copy, reason, Stage.L4, "pndisc_redo")
    net.clock.add_timer(net.random.random() * net.nd_tbl.proxy_delay, pndisc_redo)


def ndisc_recv_na(skb: SkBuff) -> DropReason | None:
    net, dev, buf, th = skb.net, skb.dev, skb.buf, skb.transport_header
    if skb.tail - th < ND_MSG_LEN:
        return DropReason.PKT_TOO_SMALL
    daddr = wire_ipv6.ADDRS.unpack_from(buf, skb.network_header)[1]
    message = NdMsg(buf, th)
    flags, target = message.flags, message.target
    solicited = bool(flags & ND_SOLICITED)
    idev = dev.ip6_ptr
    if target[0] == 0xFF or (daddr[0] == 0xFF and solicited):
        return DropReason.NOT_SPECIFIED
    if not solicited and idev is not None and idev.cnf.drop_unsolicited_na:
        return DropReason.NOT_SPECIFIED
    options = parse_options(buf, th + ND_MSG_LEN, skb.tail)
    if options is None:
        return DropReason.IPV6_NDISC_BAD_OPTIONS
    lladdr = _opt_lladdr(buf, options, ND_OPT_TARGET_LL_ADDR)
    if lladdr is False:
        return DropReason.NOT_SPECIFIED
    ifp = ipv6_get_ifaddr(net, target, dev)
    if ifp is not None:
        if ifp.flags & IFA_F_TENTATIVE:
            addrconf_dad_failure(net, ifp)
            _hop(skb, "ndisc_recv_na", "DADFAILED")
        return DropReason.NOT_SPECIFIED  # somebody advertised our address
    neigh = net.nd_tbl.entries.get((dev.ifindex, target))
    if neigh is None or neigh.state & NUD_FAILED:
        _hop(skb, "ndisc_recv_na", "IGNORED", "no entry" if neigh is None else "FAILED")
        return DropReason.NOT_SPECIFIED
    neigh.router = bool(flags & ND_ROUTER)
    ndisc_update(net, neigh, lladdr, NUD_REACHABLE if solicited else NUD_STALE, override=bool(flags & ND_OVERRIDE))
    _hop(skb, "ndisc_recv_na", "CONSUMED", "updated")
    return None


def ndisc_recv_rs(skb: SkBuff) -> DropReason | None:
    """A router takes the soliciting host as a STALE neighbour (no RA is sent:
    the kernel leaves advertising to a daemon)."""
    dev, buf, th = skb.dev, skb.buf, skb.transport_header
    if skb.tail - th < RS_MSG_LEN:
        return DropReason.PKT_TOO_SMALL
    idev = dev.ip6_ptr
    saddr = wire_ipv6.ADDRS.unpack_from(buf, skb.network_header)[0]
    if idev is None or not idev.cnf.forwarding or saddr == IN6ADDR_ANY:
        return DropReason.NOT_SPECIFIED
    options = parse_options(buf, th + RS_MSG_LEN, skb.tail)
    if options is None:
        return DropReason.IPV6_NDISC_BAD_OPTIONS
    return _learn_sender(skb, saddr, options, False, "ndisc_recv_rs")


def ipv6_accept_ra(idev) -> bool:
    """include/net/ipv6.h ipv6_accept_ra(): a router (forwarding on) takes
    advertisements only with accept_ra 2."""
    return idev.cnf.accept_ra == 2 if idev.cnf.forwarding else bool(idev.cnf.accept_ra)


def ndisc_router_discovery(skb: SkBuff) -> DropReason | None:
    """An RA from a link-local source: with ipv6_accept_ra(), the default
    router it names (accept_ra_defrtr, not from an address of ours), its cur
    hop limit (not below accept_ra_min_hop_limit); its sender a STALE router
    entry whatever accept_ra says; then, with ipv6_accept_ra(), its MTU option
    (accept_ra_mtu, within [1280, the device's MTU])."""
    net, dev, buf, th = skb.net, skb.dev, skb.buf, skb.transport_header
    saddr = wire_ipv6.ADDRS.unpack_from(buf, skb.network_header)[0]
    if not wire_ipv6.is_linklocal(saddr):
        return DropReason.NOT_SPECIFIED
    if skb.tail - th < RA_MSG_LEN:
        return DropReason.PKT_TOO_SMALL
    idev = dev.ip6_ptr
    if idev is None:
        return DropReason.NOT_SPECIFIED
    options = parse_options(buf, th + RA_MSG_LEN, skb.tail)
    if options is None:
        return DropReason.IPV6_NDISC_BAD_OPTIONS
    accept_ra = ipv6_accept_ra(idev)
    rt = None
    if accept_ra and idev.cnf.accept_ra_defrtr and (idev.cnf.accept_ra_from_local
                                                    or not ipv6_chk_addr(net, saddr, dev)):
        rt = _default_router(skb, idev, RaMsg(buf, th), saddr)
    reason = _learn_sender(skb, saddr, options, True, "ndisc_router_discovery")
    if reason is not None or not accept_ra:
        return reason
    if ND_OPT_MTU in options and idev.cnf.accept_ra_mtu:
        mtu = option_mtu(buf, options[ND_OPT_MTU])
        if IPV6_MIN_MTU <= mtu <= dev.mtu and mtu != idev.cnf.mtu6:
            net.sysctl.store(f"net.ipv6.conf.{dev.name}.mtu", mtu)
            if rt is not None:
                rt.mtu = mtu
    return None


def _default_router(skb: SkBuff, idev, ra: RaMsg, saddr: bytes) -> Fib6Info | None:
    """The default-router part of ndisc_router_discovery(): the route through
    the sender added or renewed for the router lifetime with its preference,
    or withdrawn (lifetime 0); then the cur hop limit, the route's hoplimit
    metric too. A lifetime below accept_ra_min_lft skips both. The route, if any."""
    net, dev = skb.net, skb.dev
    lifetime = ra.router_lifetime
    if lifetime and lifetime < idev.cnf.accept_ra_min_lft:
        return None
    pref = ra.router_pref
    if pref == ICMPV6_ROUTER_PREF_INVALID or not idev.cnf.accept_ra_rtr_pref:
        pref = ICMPV6_ROUTER_PREF_MEDIUM  # 10b is taken as 00b
    rt = route.rt6_get_dflt_router(net, saddr, dev)
    if rt is not None and not lifetime:
        route.ip6_del_rt(net, rt)
        rt = None
    elif rt is None and lifetime:
        rt = route.rt6_add_dflt_router(net, saddr, dev, pref)
    elif rt is not None:
        rt.pref = pref
    if rt is not None:
        route.fib6_set_expires(net, rt, lifetime)
    hop_limit = ra.cur_hop_limit
    if idev.cnf.accept_ra_min_hop_limit < 256 and hop_limit and idev.cnf.accept_ra_min_hop_limit <= hop_limit:
        net.sysctl.store(f"net.ipv6.conf.{dev.name}.hop_limit", hop_limit)
        if rt is not None:
            rt.hoplimit = hop_limit
    return rt


def _learn_sender(skb: SkBuff, saddr: bytes, options: dict[int, int], router: bool,
                  where: str) -> DropReason | None:
    """What ndisc_recv_rs() and ndisc_router_discovery() both do with a
    checked RS or RA and its parsed options: the sender made a STALE entry
    with its source link-layer address (a router's entry for an RA, a host's
    for an RS)."""
    net, dev, buf = skb.net, skb.dev, skb.buf
    lladdr = _opt_lladdr(buf, options, ND_OPT_SOURCE_LL_ADDR)
    if lladdr is False:
        return DropReason.NOT_SPECIFIED
    neigh = net.nd_tbl.entries.get((dev.ifindex, saddr)) or ndisc_constructor(net, dev, saddr)
    neigh.router = router
    ndisc_update(net, neigh, lladdr, NUD_STALE, override=True)
    _hop(skb, where, "CONSUMED")
    return None


def ndisc_init(net) -> None:
    """neigh_table_init(NEIGH_ND_TABLE, &nd_tbl) (locktime 0); the neighbour
    output ip6_finish_output2() calls, DAD's sender and ip6_forward()'s redirect."""
    neigh_table_init(net, "nd_tbl", NeighTable({}, ETH_P_IPV6, ndisc_solicit, ndisc_error_report, locktime=0.0,
                                               pconstructor=pndisc_constructor, pdestructor=pndisc_destructor))
    net.ipv6.neigh_output = ndisc_neigh_output
    net.ipv6.ndisc_send_ns = ndisc_send_ns
    net.ipv6.ndisc_send_redirect = ndisc_send_redirect
