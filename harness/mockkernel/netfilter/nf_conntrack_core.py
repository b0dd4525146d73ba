"""Connection tracking (net/netfilter/nf_conntrack_core.c, nf_conntrack_proto_*.c).

Conntrack runs in a namespace only once something needs it (nf_ct_netns_get():
a ruleset using `ct` or NAT), then: nf_conntrack_in() at PREROUTING and OUTPUT
(priority -200) attaches the entry and ctinfo to the skb, creating an
unconfirmed entry for a new connection; __nf_conntrack_confirm() at
POSTROUTING and INPUT (INT_MAX) inserts it into the table. With conntrack on,
nf_defrag_ipv4 reassembles fragments at -400 before anything looks at ports.

ctinfo: a reply-direction hit is ESTABLISHED_REPLY (and marks SEEN_REPLY); an
original-direction hit after a reply is ESTABLISHED, before it NEW; an ICMP error
whose inner packet belongs to an entry is RELATED. A packet the tracker refuses
(TCP with a bad flag combination, or a first packet that is a bare RST/FIN/ACK
without tcp_loose) gets no entry: INVALID. Expiry is lazy on lookup, in virtual
time. A full table (nf_conntrack_max) early-drops one non-assured entry, else
drops the new packet ("nf_conntrack: table full, dropping packet").
Left out: TCP window tracking (sequence numbers are not checked), helpers and
expectations, zones.
"""
from __future__ import annotations

import struct

from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.tracer import Lazy
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_STOLEN, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT,
                                               NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK,
                                               NF_IP_PRI_CONNTRACK_CONFIRM, NF_IP_PRI_CONNTRACK_DEFRAG,
                                               NFPROTO_IPV4, NfHookState)
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY, IP_CT_ESTABLISHED,
                                                       IP_CT_ESTABLISHED_REPLY, IP_CT_NEW, IP_CT_RELATED,
                                                       IP_CT_RELATED_REPLY, IPS_ASSURED, IPS_CONFIRMED,
                                                       IPS_SEEN_REPLY, UNTRACKED, NfConn, Tuple)
from harness.mockkernel.wire.icmp import (ERROR_TYPES, ICMP_ADDRESS, ICMP_ECHO, ICMP_INFO_REQUEST,
                                          ICMP_TIMESTAMP)
from harness.mockkernel.wire.ipv4 import IP_MF, IP_OFFSET, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ip_str

# the request types that may start an ICMP "connection", and their replies
ICMP_REQUESTS = {ICMP_ECHO: 0, ICMP_TIMESTAMP: 14, ICMP_INFO_REQUEST: 16, ICMP_ADDRESS: 18}
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# nf_conntrack_proto_tcp.c timeouts (seconds)
TCP_TIMEOUTS = {"SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 432000, "FIN_WAIT": 120,
                "CLOSE_WAIT": 60, "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10}
GENERIC_TIMEOUT = 600
CT_SYSCTL_DEFAULTS = {"net.netfilter.nf_conntrack_max": "262144",
                      "net.netfilter.nf_conntrack_tcp_loose": "1",
                      "net.netfilter.nf_conntrack_tcp_be_liberal": "0",
                      "net.netfilter.nf_conntrack_udp_timeout": "30",
                      "net.netfilter.nf_conntrack_udp_timeout_stream": "120",
                      "net.netfilter.nf_conntrack_icmp_timeout": "30"}


class ConntrackTable:
    """The namespace's conntrack state: the hash by tuple, its users, its hooks."""

    def __init__(self) -> None:
        self.hash: dict[Tuple, tuple[NfConn, int]] = {}
        self.entries: list[NfConn] = []
        self.users = 0
        self.hook_entries: list = []


def nf_ct_netns_get(net) -> None:
    """A ruleset started using conntrack: register its hooks on first use."""
    ct = net.conntrack
    ct.users += 1
    if ct.users > 1:
        return
    for name, value in CT_SYSCTL_DEFAULTS.items():
        net.sysctl.values.setdefault(name, value)
    hooks = net.nf_hooks
    ct.hook_entries = [
        hooks.register(NFPROTO_IPV4, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK_DEFRAG, "nf_defrag_ipv4", ipv4_conntrack_defrag),
        hooks.register(NFPROTO_IPV4, NF_INET_LOCAL_OUT, NF_IP_PRI_CONNTRACK_DEFRAG, "nf_defrag_ipv4", ipv4_conntrack_defrag),
        hooks.register(NFPROTO_IPV4, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv4_conntrack_in),
        hooks.register(NFPROTO_IPV4, NF_INET_LOCAL_OUT, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv4_conntrack_in),
        hooks.register(NFPROTO_IPV4, NF_INET_POST_ROUTING, NF_IP_PRI_CONNTRACK_CONFIRM, "nf_confirm", ipv4_confirm),
        hooks.register(NFPROTO_IPV4, NF_INET_LOCAL_IN, NF_IP_PRI_CONNTRACK_CONFIRM, "nf_confirm", ipv4_confirm),
    ]


def nf_ct_netns_put(net) -> None:
    ct = net.conntrack
    ct.users -= 1
    if ct.users == 0:
        for entry in ct.hook_entries:
            net.nf_hooks.unregister(entry)
        ct.hook_entries = []


def ipv4_conntrack_defrag(skb: SkBuff, state: NfHookState) -> int:
    """nf_defrag_ipv4: reassemble before conntrack sees ports."""
    from harness.mockkernel.ipv4 import ip_fragment
    nh = skb.network_header
    frag_off = (skb.buf[nh + 6] << 8) | skb.buf[nh + 7]
    if skb.nfct is UNTRACKED or not frag_off & (IP_MF | IP_OFFSET):
        return NF_ACCEPT
    if ip_fragment.ip_defrag(skb) is None:
        return NF_STOLEN  # queued until the datagram is complete
    skb.data = skb.network_header
    return NF_ACCEPT


def packet_tuple(buf: bytearray, nh: int) -> Tuple | None:
    """nf_ct_get_tuple(): None when the L4 header is missing."""
    ihl = (buf[nh] & 0x0F) * 4
    proto = buf[nh + 9]
    saddr, daddr = struct.unpack_from("!II", buf, nh + 12)
    th = nh + ihl
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        if len(buf) < th + 4:
            return None
        sport, dport = struct.unpack_from("!HH", buf, th)
        return Tuple(saddr, daddr, proto, sport, dport)
    if proto == IPPROTO_ICMP:
        if len(buf) < th + 8:
            return None
        icmp_type, code = buf[th], buf[th + 1]
        ident = struct.unpack_from("!H", buf, th + 4)[0] if icmp_type not in ERROR_TYPES else 0
        return Tuple(saddr, daddr, proto, ident, icmp_type << 8 | code)
    return Tuple(saddr, daddr, proto, 0, 0)


def invert_tuple(t: Tuple) -> Tuple:
    """nf_ct_invert_tuple(): ICMP requests invert to their reply type."""
    if t.proto == IPPROTO_ICMP:
        icmp_type, code = t.dport >> 8, t.dport & 0xFF
        reply = ICMP_REQUESTS.get(icmp_type, icmp_type)
        return Tuple(t.dst, t.src, t.proto, t.sport, reply << 8 | code)
    return t.invert()


def nf_ct_find(net, t: Tuple) -> tuple[NfConn, int] | None:
    hit = net.conntrack.hash.get(t)
    if hit is None:
        return None
    ct, _ = hit
    if ct.timeout <= net.clock.now and ct.status & IPS_CONFIRMED:
        nf_ct_delete(net, ct)
        return None
    return hit


def nf_ct_delete(net, ct: NfConn) -> None:
    table = net.conntrack
    for t in ct.tuplehash:
        table.hash.pop(t, None)
    if ct in table.entries:
        table.entries.remove(ct)


def ipv4_conntrack_in(skb: SkBuff, state: NfHookState) -> int:
    """nf_conntrack_in()."""
    net = skb.net
    if skb.nfct is UNTRACKED:
        return NF_ACCEPT
    if skb.nfct is not None:  # looped back, or seen at OUTPUT already
        return NF_ACCEPT
    nh = skb.network_header
    t = packet_tuple(skb.buf, nh)
    if t is None:
        return _invalid(skb, state, "no L4 header")
    if t.proto == IPPROTO_ICMP and (t.dport >> 8) in ERROR_TYPES:
        return icmp_error(skb, state, t)
    hit = nf_ct_find(net, t)
    if hit is None:
        if t.proto == IPPROTO_ICMP and (t.dport >> 8) not in ICMP_REQUESTS:
            return _invalid(skb, state, "ICMP type that cannot start a connection")
        if t.proto == IPPROTO_TCP and not _tcp_new_ok(net, skb):
            return _invalid(skb, state, "TCP packet that cannot start a connection")
        if not _room_for_one_more(net):
            skb.cb = skb.cb or {}
            skb.cb["drop_location"] = "nf_conntrack_in"
            net.tracer.hop(skb, state.stage, "nf_conntrack_in", "DROP", "table full")
            return NF_DROP
        ct = NfConn([t, invert_tuple(t)])
        _track(net, ct, skb, IP_CT_DIR_ORIGINAL)
        skb.nfct, skb.ctinfo = ct, IP_CT_NEW
    else:
        ct, direction = hit
        if direction == IP_CT_DIR_REPLY:
            ct.status |= IPS_SEEN_REPLY
            ctinfo = IP_CT_ESTABLISHED_REPLY
        else:
            ctinfo = IP_CT_ESTABLISHED if ct.status & IPS_SEEN_REPLY else IP_CT_NEW
        if not _track(net, ct, skb, direction):
            return _invalid(skb, state, "TCP flags invalid in state " + ct.proto_state)
        skb.nfct, skb.ctinfo = ct, ctinfo
    net.tracer.hop(skb, state.stage, "nf_conntrack_in", _CTINFO_NAMES[skb.ctinfo], ct_summary(ct))
    return NF_ACCEPT


_CTINFO_NAMES = {IP_CT_NEW: "NEW", IP_CT_ESTABLISHED: "ESTABLISHED", IP_CT_ESTABLISHED_REPLY: "ESTABLISHED_REPLY",
                 IP_CT_RELATED: "RELATED", IP_CT_RELATED_REPLY: "RELATED_REPLY"}


def _invalid(skb: SkBuff, state: NfHookState, why: str) -> int:
    skb.nfct, skb.ctinfo = None, 0
    skb.net.tracer.hop(skb, state.stage, "nf_conntrack_in", "INVALID", why)
    return NF_ACCEPT


def icmp_error(skb: SkBuff, state: NfHookState, t: Tuple) -> int:
    """icmp_error_message(): an error is RELATED to the entry of the packet it quotes."""
    net = skb.net
    inner = skb.network_header + (skb.buf[skb.network_header] & 0x0F) * 4 + 8
    if inner + 20 > skb.tail:
        return _invalid(skb, state, "ICMP error too short")
    inner_tuple = packet_tuple(skb.buf, inner)
    hit = nf_ct_find(net, invert_tuple(inner_tuple)) if inner_tuple else None
    if hit is None:
        return _invalid(skb, state, "ICMP error for no known connection")
    ct, direction = hit
    # the quoted packet went the other way: an error travelling in `direction`
    skb.nfct, skb.ctinfo = ct, IP_CT_RELATED if direction == IP_CT_DIR_ORIGINAL else IP_CT_RELATED_REPLY
    net.tracer.hop(skb, state.stage, "nf_conntrack_in", _CTINFO_NAMES[skb.ctinfo], ct_summary(ct))
    return NF_ACCEPT


def _room_for_one_more(net) -> bool:
    """nf_conntrack_max: early_drop() a non-assured entry when full."""
    table = net.conntrack
    limit = net.sysctl.int("net.netfilter.nf_conntrack_max")
    if limit == 0 or len(table.entries) < limit:
        return True
    victim = next((c for c in table.entries if not c.status & IPS_ASSURED), None)
    if victim is None:
        return False
    nf_ct_delete(net, victim)
    return True


def _tcp_flags(skb: SkBuff) -> int:
    th = skb.network_header + (skb.buf[skb.network_header] & 0x0F) * 4
    return skb.buf[th + 13]


VALID_TCP_FLAGS = {TCP_SYN, TCP_SYN | TCP_URG, TCP_SYN | TCP_ACK, TCP_RST, TCP_RST | TCP_ACK,
                   TCP_FIN | TCP_ACK, TCP_FIN | TCP_ACK | TCP_URG, TCP_ACK, TCP_ACK | TCP_URG}


def _tcp_new_ok(net, skb: SkBuff) -> bool:
    """tcp_new(): a SYN starts a connection; with tcp_loose any valid non-RST
    segment picks up a connection mid-stream."""
    flags = _tcp_flags(skb) & ~TCP_PSH
    if flags not in VALID_TCP_FLAGS:
        return False
    if flags & TCP_SYN and not flags & TCP_ACK:
        return True
    return bool(net.sysctl.int("net.netfilter.nf_conntrack_tcp_loose")) and not flags & (TCP_RST | TCP_FIN)


def _track(net, ct: NfConn, skb: SkBuff, direction: int) -> bool:
    """The protocol tracker's packet(): state and timeout; False for INVALID."""
    proto = ct.original.proto
    now = net.clock.now
    if proto == IPPROTO_TCP:
        flags = _tcp_flags(skb) & ~TCP_PSH
        if flags not in VALID_TCP_FLAGS:
            return False
        ct.proto_state = _tcp_next_state(ct.proto_state, flags, direction)
        if ct.proto_state == "ESTABLISHED" and ct.status & IPS_SEEN_REPLY:
            ct.status |= IPS_ASSURED
        ct.timeout = now + TCP_TIMEOUTS[ct.proto_state]
    elif proto == IPPROTO_UDP:
        # udp_packet(): a stream (replied, and still active 2 s after it began)
        # is ASSURED and gets the long timeout
        stream_ts = ct.proto.setdefault("stream_ts", now + 2.0)
        if ct.status & IPS_SEEN_REPLY and now > stream_ts:
            ct.status |= IPS_ASSURED
            ct.timeout = now + net.sysctl.int("net.netfilter.nf_conntrack_udp_timeout_stream")
        else:
            ct.timeout = now + net.sysctl.int("net.netfilter.nf_conntrack_udp_timeout")
    elif proto == IPPROTO_ICMP:
        ct.timeout = now + net.sysctl.int("net.netfilter.nf_conntrack_icmp_timeout")
    else:
        ct.timeout = now + GENERIC_TIMEOUT
    return True


def _tcp_next_state(current: str, flags: int, direction: int) -> str:
    """A condensed tcp_conntracks[][] table for the common transitions."""
    if flags & TCP_RST:
        return "CLOSE"
    if flags & TCP_SYN:
        if flags & TCP_ACK:
            return "SYN_RECV" if current in ("SYN_SENT", "SYN_RECV") else current or "SYN_RECV"
        return "SYN_SENT" if current in ("", "SYN_SENT", "CLOSE", "TIME_WAIT") else current
    if flags & TCP_FIN:
        if current in ("ESTABLISHED", "SYN_RECV", ""):
            return "FIN_WAIT"
        if current == "FIN_WAIT":
            return "LAST_ACK"
        return current
    if flags & TCP_ACK:
        if current in ("SYN_RECV", "", "ESTABLISHED"):
            return "ESTABLISHED"
        if current == "LAST_ACK":
            return "TIME_WAIT"
        if current == "FIN_WAIT":
            return "CLOSE_WAIT" if direction == IP_CT_DIR_REPLY else current
    return current or "ESTABLISHED"


def ipv4_confirm(skb: SkBuff, state: NfHookState) -> int:
    """__nf_conntrack_confirm(): an unconfirmed entry goes into the table."""
    ct = skb.nfct
    if ct is None or ct is UNTRACKED or ct.status & IPS_CONFIRMED:
        return NF_ACCEPT
    net = skb.net
    if any(t in net.conntrack.hash for t in ct.tuplehash):
        return NF_ACCEPT  # a clash: the other entry won (nf_ct_resolve_clash)
    ct.status |= IPS_CONFIRMED
    net.conntrack.entries.append(ct)
    net.conntrack.hash[ct.original] = (ct, IP_CT_DIR_ORIGINAL)
    net.conntrack.hash[ct.reply] = (ct, IP_CT_DIR_REPLY)
    net.tracer.hop(skb, state.stage, "nf_confirm", "CONFIRMED", ct_summary(ct))
    return NF_ACCEPT


def ct_summary(ct: NfConn) -> Lazy:
    """The entry's tuples as they are now, formatted when read."""
    return Lazy(_tuples_text, ct.original, ct.reply)


def _tuples_text(o: Tuple, r: Tuple) -> str:
    return (f"{ip_str(o.src)}:{o.sport} > {ip_str(o.dst)}:{o.dport} / "
            f"reply {ip_str(r.src)}:{r.sport} > {ip_str(r.dst)}:{r.dport}")
