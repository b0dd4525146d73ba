"""NAT (net/netfilter/nf_nat_core.c, nf_nat_proto.c, nf_nat_masquerade.c, nf_nat_redirect.c).

`type nat` chains are not hook entries of their own: nf_nat_register_fn() puts
them in the NAT core's lookup list for their hook (ordered by the chain's
priority) and registers the core's hook at NF_IP_PRI_NAT_DST (-100:
PREROUTING, OUTPUT) or NF_IP_PRI_NAT_SRC (+100: POSTROUTING, INPUT).
nf_nat_inet_fn() runs the nat chains only while that direction's NAT of the
connection is not set up, i.e. for its first packet (NEW, or RELATED); the
first chain that binds wins; if none does, a null binding is made (which may
still move a clashing source port). Every packet is then rewritten from the
entry (nf_nat_packet): DNAT in PREROUTING/OUTPUT, SNAT in POSTROUTING/INPUT,
replies the other way round.
Port choice (get_unique_tuple, nf_nat_l4proto_unique_tuple): keep the port
when the resulting tuple is free, unless `random`/`fully-random` ask for a new
one every time; else search the range (or by the original port's class: <512,
512-1023, >=1024) from a random offset. DNAT without a port range never
changes the port. ICMP queries' echo id is their port: every id is in range.

IPv6 (nf_nat_proto.c nf_nat_ipv6_manip_pkt, nf_nat_icmpv6_reply_translation;
nf_nat_masquerade.c nf_nat_masquerade_ipv6): the NAT core registers per
family, an inet nat chain in both; a connection's addresses are 16 bytes,
the transport header is found past the extension headers, and the TCP, UDP
and ICMPv6 checksums follow the address (their pseudo-header) and port.
"""
from __future__ import annotations

from functools import partial

from harness.journey import QUOTED_REWRITE, Hop
from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.tracer import Lazy
from harness.mockkernel.ipv4.route import RT_SCOPE_UNIVERSE, inet_select_addr, ip_route_output
from harness.mockkernel.ipv6 import addrconf
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT,
                                               NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST,
                                               NF_IP_PRI_NAT_SRC, NFPROTO_IPV4, NFPROTO_IPV6, NfHookState)
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY, IP_CT_IS_REPLY,
                                                       IP_CT_NEW, IP_CT_RELATED, IP_CT_RELATED_REPLY,
                                                       IP_CT_UNTRACKED, IPS_DST_NAT, IPS_DST_NAT_DONE,
                                                       IPS_NAT_MASK, IPS_SRC_NAT, IPS_SRC_NAT_DONE,
                                                       UNTRACKED, NfConn, Tuple, nf_ct_set_status)
from harness.mockkernel.netfilter.nf_conntrack_core import invert_tuple
from harness.mockkernel.netfilter.nf_nat_range import NatRange
from harness.mockkernel.wire import icmp, icmpv6, ipv4, ipv6, udp
from harness.mockkernel.wire.checksum import csum_replace
from harness.mockkernel.wire.field import BE16
from harness.mockkernel.wire.ethernet import ETH_P_IPV6
from harness.mockkernel.wire.icmp import QUOTED_L4_LEN
from harness.mockkernel.wire.ipv4 import CHECK as IPV4_CHECK
from harness.mockkernel.wire.ipv4 import (CHECK_ADDRS, HEADER_LEN, IP_OFFSET, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
                                          NAT_FIELDS, Ipv4Packet, ip_str)
from harness.mockkernel.wire.tcp import CHECK as TCP_CHECK
from harness.mockkernel.wire.udp import CHECK as UDP_CHECK
from harness.mockkernel.wire.udp import DEST as UDP_DEST
from harness.mockkernel.wire.udp import SOURCE as UDP_SOURCE

NF_NAT_MANIP_SRC, NF_NAT_MANIP_DST = 0, 1
ECHO_PROTOS = (IPPROTO_ICMP, ipv6.IPPROTO_ICMPV6)  # their echo id is the "port", in sport both ways
HOOK_MANIP = {NF_INET_PRE_ROUTING: NF_NAT_MANIP_DST, NF_INET_LOCAL_OUT: NF_NAT_MANIP_DST,
              NF_INET_POST_ROUTING: NF_NAT_MANIP_SRC, NF_INET_LOCAL_IN: NF_NAT_MANIP_SRC}
HOOK_PRIORITY = {NF_INET_PRE_ROUTING: NF_IP_PRI_NAT_DST, NF_INET_LOCAL_OUT: NF_IP_PRI_NAT_DST,
                 NF_INET_POST_ROUTING: NF_IP_PRI_NAT_SRC, NF_INET_LOCAL_IN: NF_IP_PRI_NAT_SRC}
MANIP_DONE = {NF_NAT_MANIP_SRC: IPS_SRC_NAT_DONE, NF_NAT_MANIP_DST: IPS_DST_NAT_DONE}
# the nf_nat_packet hop's verdict by (direction, manip)
REWRITE_NAMES = {(IP_CT_DIR_ORIGINAL, NF_NAT_MANIP_SRC): "SNAT", (IP_CT_DIR_ORIGINAL, NF_NAT_MANIP_DST): "DNAT",
                 (IP_CT_DIR_REPLY, NF_NAT_MANIP_SRC): "UN-DNAT", (IP_CT_DIR_REPLY, NF_NAT_MANIP_DST): "UN-SNAT"}
# distinct rewrites whose journey hop a hook keeps for reuse
REWRITE_HOPS_MAX = 4096
NF_NAT_MAX_ATTEMPTS = 128  # nf_nat_l4proto_unique_tuple()'s max_attempts


class NatLookups:
    """nf_nat_lookup_hook_priv: the nat chains of one hook, by priority, and
    what the NAT core at that hook needs per packet, worked out once. `hops`
    keeps the journey hop of each rewrite seen (immutable, so every packet
    of a flow shares one: no new objects per packet for the garbage
    collector to walk)."""

    def __init__(self, hook: int) -> None:
        self.chains: list[tuple[int, int, str, object]] = []  # (priority, -seq, name, fn)
        self.manip = HOOK_MANIP[hook]
        self.done = MANIP_DONE[self.manip]  # this hook's manip is set up
        # by direction, the status bit that says packets are rewritten here:
        # this manip's in the original direction, the other one's in replies
        nat_bit = IPS_SRC_NAT if self.manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
        self.statusbits = (nat_bit, nat_bit ^ IPS_NAT_MASK)
        self.hops: dict[tuple, Hop] = {}


def nf_nat_register_fn(net, hook: int, priority: int, name: str, fn, pfs: tuple = (NFPROTO_IPV4,)) -> tuple:
    """Add a nat chain (fn(skb, state) -> verdict, binding via nf_nat_setup_info)
    for the families `pfs` (an inet chain: both, nf_nat_inet_register_fn()).
    The first nat chain of a family registers its NAT core at all four hooks
    (nf_nat_ipv4_ops, nf_nat_ipv6_ops), so a connection is rewritten and
    un-NATed everywhere even where no nat chain of its own exists. A nat
    chain alone does not turn conntrack on (only a rule using ct or NAT
    does), so an empty nat chain is never traversed. Returns a handle for
    nf_nat_unregister_fn()."""
    net.nat_seq += 1
    handle = (priority, -net.nat_seq, name, fn)  # equal priority: the later one first
    for pf in pfs:
        family = net.nat_lookups.setdefault(pf, {})
        if not family:
            for core_hook, core_priority in HOOK_PRIORITY.items():
                lookups = family[core_hook] = NatLookups(core_hook)
                lookups.core_entry = net.nf_hooks.register(pf, core_hook, core_priority, "nf_nat",
                                                           partial(nf_nat_inet_fn, lookups))
        lookups = family[hook]
        lookups.chains.append(handle)
        lookups.chains.sort(key=lambda c: (c[0], c[1]))
    return hook, handle, pfs


def nf_nat_unregister_fn(net, registration: tuple) -> None:
    hook, handle, pfs = registration
    for pf in pfs:
        family = net.nat_lookups[pf]
        family[hook].chains.remove(handle)
        if not any(lookups.chains for lookups in family.values()):
            for lookups in family.values():
                net.nf_hooks.unregister(lookups.core_entry)
            del net.nat_lookups[pf]


def nf_nat_inet_fn(lookups: NatLookups, skb: SkBuff, state: NfHookState) -> int:
    """nf_nat_ipv4_fn() (the hook's priv first, as the kernel passes it):
    ICMP errors of a connection are translated and never see nat chains;
    other packets run the chains if this manip is not set up."""
    ct = skb.nfct
    if ct is None or ct is UNTRACKED:
        return NF_ACCEPT
    ctinfo = skb.ctinfo
    if ctinfo == IP_CT_RELATED or ctinfo == IP_CT_RELATED_REPLY:
        if state.pf == NFPROTO_IPV6:
            th, proto, _ = _ipv6_transport(skb, skb.network_header)
            if proto == ipv6.IPPROTO_ICMPV6 and th + icmpv6.ICMPV6_HLEN <= skb.tail \
                    and icmpv6.is_error(icmpv6.Icmpv6Message(skb.buf, th).type):
                nf_nat_icmpv6_reply_translation(skb, ct, ctinfo, state, th)
                return _local_out_reroute(skb, ct, ctinfo, state, ip6_route_me_harder)
        elif Ipv4Packet(skb.buf, skb.network_header).protocol == IPPROTO_ICMP:
            nf_nat_icmp_reply_translation(skb, ct, ctinfo, state)
            return _local_out_reroute(skb, ct, ctinfo, state, ip_route_me_harder)
    elif ctinfo != IP_CT_NEW:
        return nf_nat_packet(lookups, skb, ct, ctinfo, state)
    if not ct.status & lookups.done:
        for _, _, _, fn in lookups.chains:
            verdict = fn(skb, state)
            if verdict != NF_ACCEPT:
                return verdict
            if ct.status & lookups.done:
                break
        else:
            nf_nat_alloc_null_binding(skb, ct, state.hook)
    return nf_nat_packet(lookups, skb, ct, ctinfo, state)


def _local_out_reroute(skb: SkBuff, ct: NfConn, ctinfo: int, state: NfHookState, route_me_harder) -> int:
    """nf_nat_ipv4_local_fn() / nf_nat_ipv6_local_fn() after an ICMP error of a
    NATed connection was translated in OUTPUT: routed again when this
    direction's destination is not the other direction's source (the error
    the host sends about a packet it SNATed on input goes back to the real
    sender, not to the NAT address it was routed to); NF_DROP_ERR() when no
    route goes there (nf_hook_slow() then frees it, NETFILTER_DROP)."""
    if state.hook != NF_INET_LOCAL_OUT:
        return NF_ACCEPT
    this, other = (ct.reply, ct.original) if ctinfo >= IP_CT_IS_REPLY else (ct.original, ct.reply)
    if this.dst != other.src and route_me_harder(skb):
        return NF_DROP
    return NF_ACCEPT


def nf_nat_alloc_null_binding(skb: SkBuff, ct: NfConn, hook: int) -> None:
    """Bind to the addresses the connection already has (the port may still move)."""
    manip = HOOK_MANIP[hook]
    # the address the manip would change, taken from the reply tuple as the kernel does
    addr = ct.reply.dst if manip == NF_NAT_MANIP_SRC else ct.reply.src
    nf_nat_setup_info(skb, ct, NatRange(addr, addr, 0, 0, frozenset({"map-ips"})), manip)


def _key_field(proto: int, manip: int) -> str:
    """The tuple field a manip's port lives in: the source or destination
    port, or for ICMP the echo id, the same in either manip ("id is same for
    either direction")."""
    return "sport" if manip == NF_NAT_MANIP_SRC or proto in ECHO_PROTOS else "dport"


def _in_range(t: Tuple, manip: int, rng) -> bool:
    """in_range(): the address and, with a port range, the port (ICMP: id)."""
    addr = t.src if manip == NF_NAT_MANIP_SRC else t.dst
    if "map-ips" in rng.flags and not rng.min_addr <= addr <= rng.max_addr:
        return False
    if "proto-specified" in rng.flags and t.proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ipv6.IPPROTO_ICMPV6):
        return rng.min_port <= getattr(t, _key_field(t.proto, manip)) <= rng.max_port
    return True


def _taken(net, candidate: Tuple, ct: NfConn) -> bool:
    """nf_nat_used_tuple(): another connection already has the reply tuple this
    translated original tuple would get."""
    other = net.conntrack.hash.get(invert_tuple(candidate))
    return other is not None and other is not ct


def _with(t: Tuple, manip: int, addr: int, port: int | None) -> Tuple:
    if manip == NF_NAT_MANIP_SRC:
        return Tuple(addr, t.dst, t.proto, t.sport if port is None else port, t.dport)
    return Tuple(t.src, addr, t.proto, t.sport, t.dport if port is None else port)


def get_unique_tuple(net, orig: Tuple, rng, manip: int, ct: NfConn) -> Tuple:
    """get_unique_tuple(): the address as find_best_ips_proto() picks it; the
    port kept when that tuple is in range and free, except with `random` or
    `fully-random` (NF_NAT_RANGE_PROTO_RANDOM_ALL), which always pick one;
    else nf_nat_l4proto_unique_tuple() picks it."""
    if "map-ips" in rng.flags:
        if rng.min_addr == rng.max_addr or "persistent" in rng.flags:
            addr = rng.min_addr
        elif rng.min_addr.__class__ is bytes:  # IPv6: the same pick over the addresses as numbers
            low, high = (int.from_bytes(a, "big") for a in (rng.min_addr, rng.max_addr))
            pick = low + (int.from_bytes(orig.src, "big") + int.from_bytes(orig.dst, "big")) % (high - low + 1)
            addr = pick.to_bytes(16, "big")
        else:
            span = rng.max_addr - rng.min_addr + 1
            addr = rng.min_addr + (orig.src + orig.dst) % span
    else:
        addr = orig.src if manip == NF_NAT_MANIP_SRC else orig.dst
    candidate = _with(orig, manip, addr, None)
    random_all = "random" in rng.flags or "fully-random" in rng.flags
    if not random_all and "proto-offset" not in rng.flags and _in_range(candidate, manip, rng) \
            and not _taken(net, candidate, ct):
        return candidate
    return nf_nat_l4proto_unique_tuple(net, candidate, rng, manip, ct)


def nf_nat_l4proto_unique_tuple(net, t: Tuple, rng, manip: int, ct: NfConn) -> Tuple:
    """A free port (ICMP: echo id) in the range, from a random offset: the
    range given, else every id for ICMP, and for TCP/UDP the class of the
    source port (<512: 1-511, 512-1023: 600-1023, else 1024-65535; without a
    range a destination port never changes). At most 128 tries, then rounds
    of half as many from new offsets while 16 or more; if none is free, the
    last one tried. With a base port (NF_NAT_RANGE_PROTO_OFFSET) the tries
    start at the port's distance from it, and get_unique_tuple() maps even a
    port already in range."""
    proto = t.proto
    field_name = _key_field(proto, manip)
    specified = "proto-specified" in rng.flags
    if specified and proto in (IPPROTO_TCP, IPPROTO_UDP) + ECHO_PROTOS:
        low, high = sorted((rng.min_port, rng.max_port))
        size = high - low + 1
    elif proto in ECHO_PROTOS:
        low, size = 0, 65536
    elif proto not in (IPPROTO_TCP, IPPROTO_UDP) or manip == NF_NAT_MANIP_DST:
        return t
    else:
        port = t.sport
        low, size = (1, 511) if port < 512 else (600, 424) if port < 1024 else (1024, 64512)
    attempts = min(size, NF_NAT_MAX_ATTEMPTS)
    shifted = "proto-offset" in rng.flags
    while True:
        # with NF_NAT_RANGE_PROTO_OFFSET the port's distance from the base (a u16), else get_random_u16()
        offset = (getattr(t, field_name) - rng.base_port) & 0xFFFF if shifted else net.random.randrange(65536)
        for i in range(attempts):
            candidate = t._replace(**{field_name: low + (offset + i) % size})
            if not _taken(net, candidate, ct):
                return candidate
        if attempts >= size or attempts < 16:
            return candidate
        attempts //= 2


def nf_nat_setup_info(skb: SkBuff, ct: NfConn, rng, manip: int) -> int:
    """Bind this direction's NAT: the reply tuple becomes the inverse of the
    translated original tuple."""
    net = skb.net
    # the original tuple as the reply would see it after the other manip
    current = invert_tuple(ct.reply)
    new = get_unique_tuple(net, current, rng, manip, ct)
    if new != current:
        ct.reply = invert_tuple(new)
        nf_ct_set_status(ct, IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT)
    nf_ct_set_status(ct, IPS_SRC_NAT_DONE if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT_DONE)
    return NF_ACCEPT


def nf_nat_packet(lookups: NatLookups, skb: SkBuff, ct: NfConn, ctinfo: int, state: NfHookState) -> int:
    """Rewrite the packet from the entry, if this direction and the hook's
    manip are NATed."""
    direction = IP_CT_DIR_REPLY if ctinfo >= IP_CT_IS_REPLY and ctinfo != IP_CT_UNTRACKED else IP_CT_DIR_ORIGINAL
    if ct.status & lookups.statusbits[direction]:
        manip = lookups.manip
        # the target is the inverse of the other direction's tuple: its source
        # is the other's destination (for TCP/UDP ports too) and vice versa
        other = ct.original if direction == IP_CT_DIR_REPLY else ct.reply
        if manip == NF_NAT_MANIP_SRC:
            addr, port = other.dst, other.dport
        else:
            addr, port = other.src, other.sport
        if other.proto in ECHO_PROTOS:
            port = other.sport  # the echo id, kept in sport in both directions
        if addr.__class__ is bytes:
            old_addr, old_port = manip_pkt6(skb, skb.network_header, addr, port, manip)
        else:
            old_addr, old_port = manip_pkt(skb, skb.network_header, addr, port, manip)
        if old_port is None:  # the port stays as it is (if the packet has one)
            old_port = port = _endpoint(skb, manip)[1]
        if state.hook == NF_INET_LOCAL_OUT and \
                (ip6_route_me_harder if addr.__class__ is bytes else ip_route_me_harder)(skb):
            return NF_DROP  # nf_nat_ipv4_local_fn(): NF_DROP_ERR() when the new destination has no route
        journey = skb.journey
        if journey is not None:
            key = (state.stage, direction, old_addr, old_port, addr, port)
            hops = lookups.hops
            hop = hops.get(key)
            if hop is None:
                if len(hops) >= REWRITE_HOPS_MAX:
                    hops.clear()
                hop = hops[key] = Hop(state.stage, "nf_nat_packet", REWRITE_NAMES[direction, manip],
                                      Lazy(_rewrite_text, manip, old_addr, old_port, addr, port))
            journey.hops.append(hop)
    return NF_ACCEPT


def _endpoint(skb: SkBuff, manip: int) -> tuple[int, int | None]:
    """The address and port a manip rewrites, as they are in the packet now."""
    buf, nh = skb.buf, skb.network_header
    if skb.protocol == ETH_P_IPV6:
        saddr, daddr = ipv6.ADDRS.unpack_from(buf, nh)
        th, proto, frag_off = _ipv6_transport(skb, nh)
        addr = saddr if manip == NF_NAT_MANIP_SRC else daddr
        if proto not in (IPPROTO_UDP, IPPROTO_TCP) or th < 0 or frag_off & ~0x7:
            return addr, None
        sport, dport = udp.PORTS.unpack_from(buf, th)
        return addr, sport if manip == NF_NAT_MANIP_SRC else dport
    ver_ihl, proto, saddr, daddr = ipv4.TUPLE_FIELDS.unpack_from(buf, nh)
    addr = saddr if manip == NF_NAT_MANIP_SRC else daddr
    if proto != IPPROTO_UDP and proto != IPPROTO_TCP:
        return addr, None
    sport, dport = udp.PORTS.unpack_from(buf, nh + ipv4.HEADER_LEN[ver_ihl])  # TCP's ports are where UDP's are
    return addr, sport if manip == NF_NAT_MANIP_SRC else dport


def _rewrite_text(manip: int, old_addr: int, old_port: int | None, addr: int, port: int | None) -> str:
    def text(addr, port: int | None) -> str:
        if addr.__class__ is bytes:
            return ipv6.addr_str(addr) if port is None else f"[{ipv6.addr_str(addr)}]:{port}"
        return ip_str(addr) if port is None else f"{ip_str(addr)}:{port}"
    return f"{'saddr' if manip == NF_NAT_MANIP_SRC else 'daddr'} {text(old_addr, old_port)} -> {text(addr, port)}"


def _quoted_rewrite_text(manip: int, old_addr: int, old_port: int | None, addr: int, port: int | None) -> str:
    return f"{QUOTED_REWRITE}{_rewrite_text(manip, old_addr, old_port, addr, port)}"


def ip_route_me_harder(skb: SkBuff) -> int:
    """net/ipv4/netfilter.c ip_route_me_harder(): a locally generated packet whose
    destination NAT changed is routed again; the route lookup's errno where there
    is none (no route, unreachable, prohibit, blackhole: ip_route_output_key()'s
    ERR_PTR), which its callers turn into NF_DROP_ERR(), else 0."""
    saddr, daddr = ipv4.ADDRS.unpack_from(skb.buf, skb.network_header)
    rt = ip_route_output(skb.net, daddr, saddr, mark=skb.mark)
    if isinstance(rt, int):
        return rt
    skb.dst = rt
    return 0


def manip_pkt(skb: SkBuff, nh: int, addr: int, port: int, manip: int) -> tuple[int, int | None]:
    """nf_nat_ipv4_manip_pkt(): rewrite the address (and the TCP/UDP port) to
    the target's, with incremental checksum updates, as
    csum_replace4()/inet_proto_csum_replace*() do; a zero UDP checksum stays
    zero, a result of zero becomes 0xFFFF. An ICMP query or its reply gets
    `port` as its echo id (icmp_manip_pkt). In a packet quoted by an ICMP
    error the L4 header may be cut short: only what is there is updated.
    Returns the old address and TCP/UDP port (None: no port rewritten)."""
    buf = skb.buf
    ver_ihl, frag_off, proto, check, saddr, daddr = NAT_FIELDS.unpack_from(buf, nh)
    if manip == NF_NAT_MANIP_SRC:
        old_addr, saddr = saddr, addr
    else:
        old_addr, daddr = daddr, addr
    CHECK_ADDRS.pack_into(buf, nh + IPV4_CHECK, csum_replace(check, old_addr, addr, 4), saddr, daddr)
    th = nh + HEADER_LEN[ver_ihl]
    l4_there = th + QUOTED_L4_LEN <= skb.tail
    if (proto != IPPROTO_UDP and proto != IPPROTO_TCP) or frag_off & IP_OFFSET or not l4_there:
        if proto == IPPROTO_ICMP and not frag_off & IP_OFFSET and l4_there and \
                icmp.IcmpMessage(buf, th).type in icmp.QUERY_TYPES:
            icmp_manip_pkt(buf, th, port)
        return old_addr, None
    return old_addr, manip_ports(skb, th, proto, port, manip, old_addr, addr, 4)


def manip_ports(skb: SkBuff, th: int, proto: int, port: int, manip: int, old_addr: int, addr: int,
                addr_len: int) -> int:
    """The TCP/UDP half of nf_nat_ipv{4,6}_manip_pkt(): the port at `th` set to
    `port` and the checksum updated for it and the address (`addr_len` bytes:
    the pseudo-header's) with inet_proto_csum_replace*()'s incremental update;
    a zero UDP checksum stays zero, a result of zero becomes 0xFFFF. A checksum
    cut off (an ICMP error's quote) is left. Returns the old port."""
    buf = skb.buf
    port_off = th + (UDP_SOURCE if manip == NF_NAT_MANIP_SRC else UDP_DEST)  # TCP's ports are where UDP's are
    old_port = BE16.unpack_from(buf, port_off)[0]
    BE16.pack_into(buf, port_off, port)
    check_off = th + (TCP_CHECK if proto == IPPROTO_TCP else UDP_CHECK)
    if check_off + BE16.size > skb.tail:
        return old_port
    check = BE16.unpack_from(buf, check_off)[0]
    if proto == IPPROTO_UDP and not check:
        return old_port
    check = csum_replace(check, old_addr << 16 | old_port, addr << 16 | port, addr_len + 2)
    if proto == IPPROTO_UDP and not check:
        check = 0xFFFF  # CSUM_MANGLED_0
    BE16.pack_into(buf, check_off, check)
    return old_port


def ip6_route_me_harder(skb: SkBuff) -> int:
    """net/ipv6/netfilter.c ip6_route_me_harder(): a locally generated IPv6 packet
    whose destination NAT changed is routed again; the dst's error where the
    lookup failed (its callers drop the packet), else 0."""
    dst = route6.ip6_route_output(skb.net, ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0])
    if dst.error:
        return dst.error
    skb.dst = dst
    return 0


def _ipv6_transport(skb: SkBuff, nh: int) -> tuple[int, int, int]:
    """ipv6_skip_exthdr() from the header at `nh`: (offset or -1, protocol, frag_off)."""
    return ipv6_skip_exthdr(skb.buf, nh + ipv6.IPV6_HLEN, skb.buf[nh + ipv6.NEXTHDR], skb.tail)


def manip_pkt6(skb: SkBuff, nh: int, addr: bytes, port: int, manip: int) -> tuple[bytes, int | None]:
    """nf_nat_ipv6_manip_pkt(): the address (no header checksum in IPv6) and
    the transport header past the extension headers, unless the packet is a
    non-first fragment: TCP/UDP's port, their checksum over the pseudo-header
    and port (inet_proto_csum_replace16/2), ICMPv6's checksum and a query's
    echo id. Returns the old address and TCP/UDP port (None: none rewritten)."""
    buf = skb.buf
    at = nh + (ipv6.SADDR if manip == NF_NAT_MANIP_SRC else ipv6.DADDR)
    old_addr = bytes(buf[at:at + 16])
    buf[at:at + 16] = addr
    th, proto, frag_off = _ipv6_transport(skb, nh)
    old_int, new_int = int.from_bytes(old_addr, "big"), int.from_bytes(addr, "big")
    if th < 0 or frag_off & ~0x7 or th + QUOTED_L4_LEN > skb.tail:
        return old_addr, None
    if proto == ipv6.IPPROTO_ICMPV6:
        check_off = th + icmpv6.CHECKSUM
        check = BE16.unpack_from(buf, check_off)[0]
        check = csum_replace(check, old_int, new_int, 16)
        message = icmpv6.Icmpv6Message(buf, th)
        if message.type in (icmpv6.ICMPV6_ECHO_REQUEST, icmpv6.ICMPV6_ECHO_REPLY) and message.echo_id != port:
            check = csum_replace(check, message.echo_id, port, 2)
            BE16.pack_into(buf, th + icmpv6.ID, port)
        BE16.pack_into(buf, check_off, check)
        return old_addr, None
    if proto != IPPROTO_UDP and proto != IPPROTO_TCP:
        return old_addr, None
    return old_addr, manip_ports(skb, th, proto, port, manip, old_int, new_int, 16)


def icmp_manip_pkt(buf: bytearray, th: int, ident: int) -> None:
    """The echo id of an ICMP query at `th` becomes `ident`, its checksum
    updated incrementally."""
    check, old = icmp.CHECK_ID.unpack_from(buf, th + icmp.CHECKSUM)
    if old != ident:
        icmp.CHECK_ID.pack_into(buf, th + icmp.CHECKSUM, csum_replace(check, old, ident, 2), ident)


def nf_nat_icmp_reply_translation(skb: SkBuff, ct: NfConn, ctinfo: int, state: NfHookState) -> None:
    """An ICMP error about a NATed connection: the quoted packet gets the
    opposite manip back to what its sender sent (from the other direction's
    tuple), the outer header is rewritten as a reply to it, and the ICMP
    checksum recomputed."""
    manip = HOOK_MANIP[state.hook]
    direction = IP_CT_DIR_REPLY if ctinfo == IP_CT_RELATED_REPLY else IP_CT_DIR_ORIGINAL
    statusbit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
    if direction == IP_CT_DIR_REPLY:
        statusbit ^= IPS_NAT_MASK
    if not ct.status & statusbit:
        return
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    icmp_off = iph.payload_offset
    inner = icmp_off + icmp.QUOTED
    if inner + ipv4.IPV4_MIN_HLEN > skb.tail:
        return
    other = ct.original if direction == IP_CT_DIR_REPLY else ct.reply
    before = _endpoint(skb, manip)
    # the quoted packet gets the other direction's own address and port back
    # (a quoted ICMP query its echo id, kept in sport in both directions)
    if manip == NF_NAT_MANIP_SRC:
        inner_manip, addr, port = NF_NAT_MANIP_DST, other.dst, \
            other.sport if other.proto == IPPROTO_ICMP else other.dport
    else:
        inner_manip, addr, port = NF_NAT_MANIP_SRC, other.src, other.sport
    old_addr, old_port = manip_pkt(skb, inner, addr, port, inner_manip)
    icmp.fill_checksum(buf, icmp_off, nh + iph.tot_len)
    target = invert_tuple(other)
    if manip == NF_NAT_MANIP_SRC:
        manip_pkt(skb, nh, target.src, target.sport, manip)
    else:
        manip_pkt(skb, nh, target.dst, target.dport, manip)
    after = _endpoint(skb, manip)
    # the journey shows the outer header's rewrite; where that changed nothing, the
    # quoted packet's (a redirect's port); a pass that changed neither (the error
    # back in on lo, translated again at INPUT) shows nothing
    if after != before:
        text = Lazy(_rewrite_text, manip, *before, *after)
    elif (old_addr, old_port) != (addr, port if old_port is not None else None):
        text = Lazy(_quoted_rewrite_text, inner_manip, old_addr, old_port, addr, port if old_port is not None else None)
    else:
        return
    skb.net.tracer.hop(skb, state.stage, "nf_nat_icmp_reply_translation",
                       "SNAT" if manip == NF_NAT_MANIP_SRC else "DNAT", text)


def nf_nat_icmpv6_reply_translation(skb: SkBuff, ct: NfConn, ctinfo: int, state: NfHookState, th: int) -> None:
    """nf_nat_icmpv6_reply_translation(): as nf_nat_icmp_reply_translation(),
    the quoted packet back to what its sender sent, the outer header as a
    reply to it, and the ICMPv6 checksum over the pseudo-header again."""
    manip = HOOK_MANIP[state.hook]
    direction = IP_CT_DIR_REPLY if ctinfo == IP_CT_RELATED_REPLY else IP_CT_DIR_ORIGINAL
    statusbit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
    if direction == IP_CT_DIR_REPLY:
        statusbit ^= IPS_NAT_MASK
    if not ct.status & statusbit:
        return
    buf, nh = skb.buf, skb.network_header
    inner = icmpv6.Icmpv6Message(buf, th).quoted_offset
    if inner + ipv6.IPV6_HLEN > skb.tail:
        return
    other = ct.original if direction == IP_CT_DIR_REPLY else ct.reply
    before = _endpoint(skb, manip)
    if manip == NF_NAT_MANIP_SRC:
        manip_pkt6(skb, inner, other.dst, other.sport if other.proto in ECHO_PROTOS else other.dport,
                   NF_NAT_MANIP_DST)
    else:
        manip_pkt6(skb, inner, other.src, other.sport, NF_NAT_MANIP_SRC)
    target = invert_tuple(other)
    manip_pkt6(skb, nh, target.src if manip == NF_NAT_MANIP_SRC else target.dst,
               target.sport if manip == NF_NAT_MANIP_SRC else target.dport, manip)
    end = nh + ipv6.IPV6_HLEN + ipv6.Ipv6Packet(buf, nh).payload_len
    icmpv6.fill_checksum(buf, th, end, ipv6.pseudo_header_sum(buf, nh, ipv6.IPPROTO_ICMPV6, end - th))
    skb.net.tracer.hop(skb, state.stage, "nf_nat_icmpv6_reply_translation",
                       "SNAT" if manip == NF_NAT_MANIP_SRC else "DNAT",
                       Lazy(_rewrite_text, manip, *before, *_endpoint(skb, manip)))


def nf_nat_masquerade_ipv4(skb: SkBuff, rng, out_dev) -> int:
    """nf_nat_masquerade_ipv4(): SNAT to the address inet_select_addr() picks
    for the next hop (the egress device's, else any device's universe-scope
    one). None at all -> plain NF_DROP, which nft_do_chain() frees for both
    nft masquerade and iptables-nft's MASQUERADE (seen on the lab). A
    connection from 0.0.0.0 (a DUT with no address sending) is accepted
    unbound before any of that."""
    ct = skb.nfct
    if not ct.original.src:
        return NF_ACCEPT
    rt = skb.dst
    nexthop = rt.nexthop(ipv4.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0])
    addr = inet_select_addr(skb.net, out_dev, nexthop, RT_SCOPE_UNIVERSE)
    if not addr:
        return NF_DROP
    flags = set(rng.flags) | {"map-ips"} if rng else {"map-ips"}
    masq = NatRange(addr, addr, rng.min_port if rng else 0, rng.max_port if rng else 0, frozenset(flags))
    return nf_nat_setup_info(skb, ct, masq, NF_NAT_MANIP_SRC)


def nf_nat_masquerade_ipv6(skb: SkBuff, rng, out_dev) -> int:
    """nf_nat_masquerade_ipv6(): SNAT to the source address
    ipv6_dev_get_saddr() picks for the destination out of the egress device;
    none -> NF_DROP."""
    daddr = ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    addr = addrconf.ipv6_dev_get_saddr(skb.net, out_dev, daddr)
    if addr is None:
        return NF_DROP
    flags = set(rng.flags) | {"map-ips"} if rng else {"map-ips"}
    masq = NatRange(addr, addr, rng.min_port if rng else 0, rng.max_port if rng else 0, frozenset(flags))
    return nf_nat_setup_info(skb, skb.nfct, masq, NF_NAT_MANIP_SRC)


def nf_nat_redirect_ipv6(skb: SkBuff, rng, hook: int) -> int:
    """nf_nat_redirect_ipv6(): DNAT to ::1 for locally generated packets,
    else to the incoming device's first address that is not tentative; none
    -> NF_DROP."""
    if hook == NF_INET_LOCAL_OUT:
        addr = ipv6.LOOPBACK
    else:
        idev = addrconf.__in6_dev_get(skb.dev) if skb.dev is not None else None
        usable = [ifp.addr for ifp in idev.addr_list if not ifp.flags & addrconf.IFA_F_TENTATIVE] if idev else []
        if not usable:
            return NF_DROP
        addr = usable[0]
    flags = {"map-ips"} | (set(rng.flags) if rng else set())
    target = NatRange(addr, addr, rng.min_port if rng else 0, rng.max_port if rng else 0, frozenset(flags))
    return nf_nat_setup_info(skb, skb.nfct, target, NF_NAT_MANIP_DST)


def nf_nat_redirect_ipv4(skb: SkBuff, rng, hook: int) -> int:
    """REDIRECT: DNAT to the primary address of the incoming device (127.0.0.1
    for locally generated packets), ports as given."""
    if hook == NF_INET_LOCAL_OUT:
        addr = 0x7F000001
    else:
        ifa = skb.dev.primary_addr() if skb.dev is not None else None
        if ifa is None:
            return NF_DROP
        addr = ifa.local
    flags = {"map-ips"} | (set(rng.flags) if rng else set())
    target = NatRange(addr, addr, rng.min_port if rng else 0, rng.max_port if rng else 0, frozenset(flags))
    return nf_nat_setup_info(skb, skb.nfct, target, NF_NAT_MANIP_DST)

