"""Connection tracking (net/netfilter/nf_conntrack_core.c, nf_conntrack_proto_udp.c,
nf_conntrack_proto_icmp.c; TCP in nf_conntrack_proto_tcp.py).

Conntrack runs in a namespace only once something needs it (nf_ct_netns_get():
a ruleset using `ct` or NAT, per family: an ip table's IPv4, an ip6 table's
IPv6, inet both), then: nf_conntrack_in() at PREROUTING and OUTPUT
(priority -200) attaches the entry and ctinfo to the skb, creating an
unconfirmed entry for a new connection; __nf_conntrack_confirm() at
POSTROUTING and INPUT (INT_MAX) inserts it into the table. With conntrack on,
nf_defrag_ipv4 and nf_defrag_ipv6 (nf_conntrack_reasm.py) reassemble fragments
at -400 before anything looks at ports.
The sysctls (net.netfilter.nf_conntrack_*) exist from boot, as they do once the
module is loaded (nf_conntrack_pernet_init()).

ctinfo: a reply-direction hit is ESTABLISHED_REPLY (and marks SEEN_REPLY once the
tracker accepted it); an original-direction hit after a reply is ESTABLISHED,
before it NEW; an ICMP error whose inner packet belongs to an entry is RELATED.
A packet the tracker refuses gets no entry: INVALID (and an unconfirmed entry
is freed). Expiry is lazy on lookup, in virtual time; nf_conntrack_gc() reaps
everything expired (the front ends run it, as gc_worker would have by then).

nf_conntrack_max: __nf_conntrack_alloc() runs before the tracker, so a packet
that would be INVALID is still refused by a full table. When the count would
exceed the max, early_drop() scans NF_CT_EVICTION_RANGE (8) buckets from the
new tuple's bucket: expired entries are reaped (not counted), the first bucket
holding non-ASSURED entries of this namespace loses them all (newest first, as
chains are head-inserted), and the packet proceeds; if none, the packet is
dropped (nf_conntrack_in returns NF_DROP: NETFILTER_DROP at nf_hook_slow,
"nf_conntrack: table full, dropping packet"). The mock's hash is Python's hash of
the tuple and a per-namespace seed (the kernel's is jhash with a boot-random
seed: which bucket an entry falls in is not predictable on either), over
nf_conntrack_buckets buckets; chains are not kept, the scan walks the table
(only when it is full). nf_conntrack_max is writable here as on a whole DUT's
init namespace; inside a non-init namespace (the netns lab) the kernel makes it
read-only (0444) while the limit still applies to that namespace's own count.
IPv6 (nf_conntrack_proto.c ipv6_conntrack_in/ipv6_confirm, nf_conntrack_proto_icmpv6.c):
tuples hold 16-byte addresses; the transport header is where ipv6_skip_exthdr()
finds it (a non-first fragment nf_defrag_ipv6 let pass, or none, is INVALID:
"can't find proto in pkt"). udp_error()'s length checks make a UDP packet whose
length field says more than it holds INVALID (a first fragment passed unreassembled).
ICMPv6 neighbour discovery and MLD (types 130-136, 143) are UNTRACKED
(noct_valid_new[]); echo (128/129) and node information (139/140) are
connections, any other informational type cannot start one; an error (type <
128) is RELATED to the entry of the packet it quotes. IPv6 entries are in
`conntrack -L -f ipv6` and /proc/net/nf_conntrack, not in `conntrack -L` or
target.conntrack(), as conntrack-tools' and the lab's dump default to AF_INET.
At PREROUTING (nf_conntrack_checksum) TCP's tcp_error() checksums a segment with
nf_ip_checksum(), which keeps the sum (netfilter/utils.py), so a later reject
trusts it; udp_error()'s and nf_conntrack_icmpv4_error()'s sums are kept too.
Left out: helpers and expectations, zones, per-CPU stats (one cpu=0 line), an
ICMP message INVALID for a bad sum.
"""
from __future__ import annotations

from socket import AF_INET

from harness.journey import Hop
from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.core.sysctl import (CtlTable, proc_dointvec, proc_dointvec_jiffies, proc_dointvec_minmax,
                                            proc_dou8vec_minmax, read_only)
from harness.mockkernel.tracer import Lazy
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_STOLEN, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT,
                                               NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK,
                                               NF_IP_PRI_CONNTRACK_CONFIRM, NF_IP_PRI_CONNTRACK_DEFRAG,
                                               NFPROTO_IPV4, NFPROTO_IPV6, NfHookState)
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY, IP_CT_ESTABLISHED,
                                                       IP_CT_ESTABLISHED_REPLY, IP_CT_IS_REPLY, IP_CT_NEW, IP_CT_RELATED,
                                                       IP_CT_RELATED_REPLY, IP_CT_UNTRACKED, IPS_ASSURED, IPS_CONFIRMED,
                                                       IPS_OFFLOAD, IPS_SEQ_ADJUST, IPS_TEMPLATE,
                                                       IPS_SEEN_REPLY, UNTRACKED, COUNT_KEY, NfConn, NfConnSynproxy,
                                                       Tuple, ct_direction, nf_ct_delete, nf_ct_set_status,
                                                       nf_is_loopback_packet)
from harness.mockkernel.netfilter.nf_conntrack_seqadj import nf_ct_seq_adjust, nf_ct_seq_offset, nfct_seqadj_ext_add
from harness.mockkernel.ipv4 import ip_fragment
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.netfilter import nf_conntrack_proto_tcp as proto_tcp
from harness.mockkernel.netfilter.nf_conntrack_reasm import nf_defrag_ipv6_enable
from harness.mockkernel.netfilter.nf_conntrack_standalone import ct_seq_show
from harness.mockkernel.wire import icmp, icmpv6, ipv4, ipv6
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.udp import UDP_HLEN
from harness.mockkernel.netfilter.utils import csum_kept_by_conntrack
from harness.mockkernel.wire.udp import unpack as _udp_header
from harness.mockkernel.wire.icmp import (ERROR_TYPES, ICMP_ADDRESS, ICMP_ECHO, ICMP_INFO_REQUEST,
                                          ICMP_TIMESTAMP)
from harness.mockkernel.wire.ipv4 import (FRAG_OFF_PROTOCOL, HEADER_LEN, IP_MF, IP_OFFSET, IPPROTO_ICMP, IPPROTO_TCP,
                                          IPPROTO_UDP, TUPLE_FIELDS, Ipv4Packet, ip_str)
from harness.mockkernel.wire.udp import PORTS as L4_PORTS  # TCP's header starts with the same two ports

# the request types that may start an ICMP "connection", and their replies
ICMP_REQUESTS = {ICMP_ECHO: 0, ICMP_TIMESTAMP: 14, ICMP_INFO_REQUEST: 16, ICMP_ADDRESS: 18}
# nf_conntrack_proto_icmpv6.c: invmap[] (echo, node information), valid_new[], noct_valid_new[]
ICMPV6_NI_QUERY, ICMPV6_NI_REPLY = 139, 140
ICMPV6_INVMAP = {icmpv6.ICMPV6_ECHO_REQUEST: icmpv6.ICMPV6_ECHO_REPLY,
                 icmpv6.ICMPV6_ECHO_REPLY: icmpv6.ICMPV6_ECHO_REQUEST,
                 ICMPV6_NI_QUERY: ICMPV6_NI_REPLY, ICMPV6_NI_REPLY: ICMPV6_NI_QUERY}
ICMPV6_VALID_NEW = (icmpv6.ICMPV6_ECHO_REQUEST, ICMPV6_NI_QUERY)
ICMPV6_NOCT_VALID_NEW = frozenset((icmpv6.ICMPV6_MGM_QUERY, icmpv6.ICMPV6_MGM_REPORT, icmpv6.ICMPV6_MGM_REDUCTION,
                                   icmpv6.NDISC_ROUTER_SOLICITATION, icmpv6.NDISC_ROUTER_ADVERTISEMENT,
                                   icmpv6.NDISC_NEIGHBOUR_SOLICITATION, icmpv6.NDISC_NEIGHBOUR_ADVERTISEMENT,
                                   icmpv6.ICMPV6_MLD2_REPORT))
NF_CT_EVICTION_RANGE = 8
CHECKSUM_KEY = "net.netfilter.nf_conntrack_checksum"
MAX_KEY = "net.netfilter.nf_conntrack_max"
BUCKETS_KEY = "net.netfilter.nf_conntrack_buckets"
UDP_TIMEOUT_KEY = "net.netfilter.nf_conntrack_udp_timeout"
UDP_STREAM_KEY = "net.netfilter.nf_conntrack_udp_timeout_stream"
ICMP_TIMEOUT_KEY = "net.netfilter.nf_conntrack_icmp_timeout"
ICMPV6_TIMEOUT_KEY = "net.netfilter.nf_conntrack_icmpv6_timeout"
GENERIC_TIMEOUT_KEY = "net.netfilter.nf_conntrack_generic_timeout"
ACCT_KEY = "net.netfilter.nf_conntrack_acct"
NF_CT_DAY = 86400  # include/net/netfilter/nf_conntrack.h: an offloaded entry's lease
# nf_conntrack_standalone.c nf_ct_sysctl_table, with a new namespace's values on
# this machine's kernel (6.18; max and buckets are sized from the host's memory):
# flags are proc_dou8vec_minmax 0..1, max_retrans a u8, timeouts
# proc_dointvec_jiffies; the count is read-only everywhere (procps 4.0.2 reports the
# refused write but exits 0 on the lab; here the write fails). nf_conntrack_max and
# _buckets are writable as in a whole DUT's init namespace (a non-init netns, like
# the lab's, has them 0444).
CT = "net.netfilter.nf_conntrack_"
CT_SYSCTL_TABLE = {
    MAX_KEY: CtlTable(262144, proc_dointvec),
    COUNT_KEY: CtlTable(0, read_only),
    BUCKETS_KEY: CtlTable(262144, proc_dointvec_minmax, 1),
    CT + "checksum": CtlTable(1, proc_dou8vec_minmax, 0, 1),
    CT + "acct": CtlTable(0, proc_dou8vec_minmax, 0, 1),  # net->ct.sysctl_acct: new entries get counters
    CT + "tcp_loose": CtlTable(1, proc_dou8vec_minmax, 0, 1),
    CT + "tcp_be_liberal": CtlTable(0, proc_dou8vec_minmax, 0, 1),
    CT + "tcp_ignore_invalid_rst": CtlTable(0, proc_dou8vec_minmax, 0, 1),
    CT + "tcp_max_retrans": CtlTable(3, proc_dou8vec_minmax, 0, 255),
    **{CT + name: CtlTable(seconds, proc_dointvec_jiffies) for name, seconds in (
        ("tcp_timeout_syn_sent", 120), ("tcp_timeout_syn_recv", 60), ("tcp_timeout_established", 432000),
        ("tcp_timeout_fin_wait", 120), ("tcp_timeout_close_wait", 60), ("tcp_timeout_last_ack", 30),
        ("tcp_timeout_time_wait", 120), ("tcp_timeout_close", 10), ("tcp_timeout_max_retrans", 300),
        ("tcp_timeout_unacknowledged", 300), ("udp_timeout", 30), ("udp_timeout_stream", 120),
        ("icmp_timeout", 30), ("icmpv6_timeout", 30), ("generic_timeout", 600))},
    # CONFIG_NF_FLOW_TABLE: the flowtables' flow timeouts (tn->offload_timeout, nf_flow_table_core.py)
    "net.netfilter.nf_flowtable_tcp_timeout": CtlTable(30, proc_dointvec_jiffies),
    "net.netfilter.nf_flowtable_udp_timeout": CtlTable(30, proc_dointvec_jiffies),
}
# `conntrack -S` counters (struct ip_conntrack_stat), in the order it prints them
STAT_NAMES = ("found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
              "search_restart", "clash_resolve", "chaintoolong")


class ConntrackTable:
    """The namespace's conntrack state: the hash by tuple, the count of entries
    (net->ct.count), its users, its hooks, the early-drop hash seed and the
    statistics."""

    def __init__(self, seed: int = 0) -> None:
        # both tuples of each entry, in the order the entries were confirmed; the
        # hash holds each entry once per direction, as the kernel's does
        self.hash: dict[Tuple, NfConn] = {}
        self.count = 0
        self.users = {NFPROTO_IPV4: 0, NFPROTO_IPV6: 0}  # cnet->users4, users6
        self.hook_entries: dict[int, list] = {}
        self.hash_seed = seed
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self.hops: dict[tuple, Hop] = {}  # nf_conntrack_in's hops, see ipv4_conntrack_in()
        self.last_new = Tuple(0, 0, 0, 0, 0)  # the original tuple of the last entry allocated, see shared_tuple()
        self.acct = False  # net->ct.sysctl_acct, set by nft_ct_get_init() for bytes/packets/avgpkt

    def entries(self) -> list[NfConn]:
        """The entries in the order they were confirmed (each at its original tuple's key)."""
        return [ct for t, ct in self.hash.items() if t is ct.original]


def nf_conntrack_pernet_init(net) -> None:
    """The namespace's conntrack sysctls and /proc/net/nf_conntrack, there as
    soon as the module is loaded, and its attach for nf_ct_attach() (nf_ct_hook)."""
    net.sysctl.register(CT_SYSCTL_TABLE)
    net.proc_net["nf_conntrack"] = ct_seq_show
    net.nf_ct_attach = nf_conntrack_attach


def nf_conntrack_attach(nskb: SkBuff, skb: SkBuff) -> None:
    """nf_conntrack_attach(): an answer to `skb` (an ICMP error, a reject's RST)
    takes its entry, confirmed or not, as RELATED_REPLY to a packet of the original
    direction and RELATED otherwise; conntrack at OUTPUT leaves an skb that has
    an entry alone, so NAT translates the answer by that entry. An untracked skb
    has no entry to give (its _nfct is IP_CT_UNTRACKED over a NULL ct): the
    answer gets a bare ctinfo, which nf_conntrack_in() ignores, and is tracked
    afresh (an ICMP error then finds no entry: `ct state invalid`)."""
    if skb.nfct is UNTRACKED:
        return
    nskb.nfct = skb.nfct
    nskb.ctinfo = IP_CT_RELATED_REPLY if skb.ctinfo < IP_CT_IS_REPLY else IP_CT_RELATED


def nf_ct_netns_get(net, pf: int) -> None:
    """A ruleset of family `pf` (NFPROTO_IPV4 or NFPROTO_IPV6) started using
    conntrack: register that family's hooks on first use, for IPv6 with
    nf_defrag_ipv6's (nf_ct_netns_do_get())."""
    ct = net.conntrack
    ct.users[pf] += 1
    if ct.users[pf] > 1:
        return
    hooks = net.nf_hooks
    if pf == NFPROTO_IPV4:
        ct.hook_entries[pf] = [
            hooks.register(pf, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK_DEFRAG, "nf_defrag_ipv4", ipv4_conntrack_defrag),
            hooks.register(pf, NF_INET_LOCAL_OUT, NF_IP_PRI_CONNTRACK_DEFRAG, "nf_defrag_ipv4", ipv4_conntrack_defrag),
            hooks.register(pf, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv4_conntrack_in),
            hooks.register(pf, NF_INET_LOCAL_OUT, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv4_conntrack_in)]
    else:
        ct.hook_entries[pf] = nf_defrag_ipv6_enable(net) + [
            hooks.register(pf, NF_INET_PRE_ROUTING, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv6_conntrack_in),
            hooks.register(pf, NF_INET_LOCAL_OUT, NF_IP_PRI_CONNTRACK, "nf_conntrack_in", ipv6_conntrack_in)]
    ct.hook_entries[pf] += [
        hooks.register(pf, NF_INET_POST_ROUTING, NF_IP_PRI_CONNTRACK_CONFIRM, "nf_confirm", nf_confirm),
        hooks.register(pf, NF_INET_LOCAL_IN, NF_IP_PRI_CONNTRACK_CONFIRM, "nf_confirm", nf_confirm)]


def nf_ct_netns_put(net, pf: int) -> None:
    ct = net.conntrack
    ct.users[pf] -= 1
    if ct.users[pf] == 0:
        for entry in ct.hook_entries.pop(pf):
            net.nf_hooks.unregister(entry)


# per-packet loads, bound once
_frag_off_protocol, _tuple_fields, _ports = FRAG_OFF_PROTOCOL.unpack_from, TUPLE_FIELDS.unpack_from, L4_PORTS.unpack_from
PORTS_LEN = L4_PORTS.size


def ipv4_conntrack_defrag(skb: SkBuff, state: NfHookState) -> int:
    """nf_defrag_ipv4: reassemble before conntrack sees ports."""
    frag_off, _ = _frag_off_protocol(skb.buf, skb.network_header)
    if skb.nfct is UNTRACKED or not frag_off & (IP_MF | IP_OFFSET):
        return NF_ACCEPT
    if ip_fragment.ip_defrag(skb) is None:
        return NF_STOLEN  # queued until the datagram is complete
    skb.data = skb.network_header
    return NF_ACCEPT


HOP_CACHE_SIZE = 4096  # distinct nf_conntrack_in hops kept; the cache starts over when full
_new_tuple = tuple.__new__


def packet_tuple(buf: bytearray, nh: int) -> Tuple | None:
    """nf_ct_get_tuple(): None when the L4 header is missing."""
    ver_ihl, proto, saddr, daddr = _tuple_fields(buf, nh)
    th = nh + HEADER_LEN[ver_ihl]
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        if len(buf) < th + PORTS_LEN:
            return None
        sport, dport = _ports(buf, th)
        return _new_tuple(Tuple, (saddr, daddr, proto, sport, dport))  # skips the NamedTuple's Python __new__
    if proto == IPPROTO_ICMP:
        if len(buf) < th + icmp.ICMP_HLEN:
            return None
        icmp_type, code, _, ident, _ = icmp.HEADER.unpack_from(buf, th)
        return Tuple(saddr, daddr, proto, ident if icmp_type not in ERROR_TYPES else 0, icmp_type << 8 | code)
    return Tuple(saddr, daddr, proto, 0, 0)


def packet_tuple6(buf: bytearray, th: int, proto: int, saddr: bytes, daddr: bytes) -> Tuple | None:
    """nf_ct_get_tuple() of an IPv6 packet whose transport header is at `th`:
    ports, or for ICMPv6 the identifier and type << 8 | code; None when the
    header is missing."""
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        if len(buf) < th + PORTS_LEN:
            return None
        sport, dport = _ports(buf, th)
        return Tuple(saddr, daddr, proto, sport, dport)
    if proto == ipv6.IPPROTO_ICMPV6:
        if len(buf) < th + icmpv6.ICMPV6_HLEN:
            return None
        icmp_type, code, _, ident, _ = icmpv6.HEADER.unpack_from(buf, th)
        return Tuple(saddr, daddr, proto, ident, icmp_type << 8 | code)
    return Tuple(saddr, daddr, proto, 0, 0)


def invert_tuple(t: Tuple) -> Tuple:
    """nf_ct_invert_tuple(): ICMP and ICMPv6 requests invert to their reply type."""
    requests = ICMP_REQUESTS if t.proto == IPPROTO_ICMP else ICMPV6_INVMAP if t.proto == ipv6.IPPROTO_ICMPV6 \
        else None
    if requests is not None:
        icmp_type, code = t.dport >> 8, t.dport & 0xFF
        reply = requests.get(icmp_type, icmp_type)
        return Tuple(t.dst, t.src, t.proto, t.sport, reply << 8 | code)
    return t.invert()


def shared_tuple(table: ConntrackTable, t: Tuple) -> Tuple:
    """A new entry's original tuple holding the last new entry's address and
    port objects where they are equal (the same server, the same client):
    each is an object of 28 bytes or more (49 for an IPv6 address), and the
    table holds millions of entries (the kernel's nf_conn is 256 bytes)."""
    last = table.last_new
    src, dst, proto, sport, dport = t
    table.last_new = t = _new_tuple(Tuple, (last.src if src == last.src else src, last.dst if dst == last.dst else dst,
                                            proto, last.sport if sport == last.sport else sport,
                                            last.dport if dport == last.dport else dport))
    return t


def nf_ct_find(net, t: Tuple) -> tuple[NfConn, int] | None:
    """The entry and the direction `t` is in (NF_CT_DIRECTION(): the kernel keeps
    it in the tuple hash; here the reply tuple is compared, so an entry costs no
    object per direction)."""
    ct = net.conntrack.hash.get(t)
    if ct is None:
        return None
    if ct.timeout <= net.clock.now and ct.status & IPS_CONFIRMED:
        if ct.status & IPS_OFFLOAD:  # gc_worker() would have refreshed it: nf_ct_offload_timeout()
            ct.timeout = net.clock.now + NF_CT_DAY
        else:
            nf_ct_delete(net, ct)
            return None
    return ct, IP_CT_DIR_REPLY if t == ct.reply else IP_CT_DIR_ORIGINAL


def nf_conntrack_gc(net) -> None:
    """gc_worker(): reap every expired entry; an offloaded one gets its day again
    (nf_ct_offload_timeout()), the flowtable decides when it goes."""
    now = net.clock.now
    for ct in [ct for ct in net.conntrack.entries() if ct.timeout <= now]:
        if ct.status & IPS_OFFLOAD:
            ct.timeout = now + NF_CT_DAY
        else:
            nf_ct_delete(net, ct)


def ctnetlink_create_conntrack(net, ct: NfConn) -> str:
    """IPCTNL_MSG_CT_NEW: insert an entry built by the caller (tuples, status,
    mark, timeout, TCP state). "" or the error: a tuple is taken (EEXIST), or
    the table is full (ENOMEM, after early_drop() from bucket 0)."""
    if any(t in net.conntrack.hash for t in ct.tuplehash):
        return "File exists"
    if not _nf_conntrack_alloc_room(net, None):
        return "Cannot allocate memory"
    nf_conntrack_hash_insert(net, ct)
    return ""


def nf_conntrack_hash_insert(net, ct: NfConn) -> None:
    """Insert a confirmed entry into the table (both directions' tuples)."""
    table = net.conntrack
    nf_ct_set_status(ct, IPS_CONFIRMED)
    table.hash[ct.original] = table.hash[ct.reply] = ct
    table.count += 1
    table.stats["insert"] += 1
    net.sysctl.values[COUNT_KEY] = table.count


def ipv4_conntrack_in(skb: SkBuff, state: NfHookState) -> int:
    """ipv4_conntrack_in(): nf_conntrack_in() of an IPv4 packet."""
    nfct = skb.nfct
    if nfct is not None and not nfct.status & IPS_TEMPLATE:  # untracked, looped back, or seen at OUTPUT already
        return NF_ACCEPT
    t = packet_tuple(skb.buf, skb.network_header)
    if t is None:
        return _invalid(skb, state, "no L4 header")
    if t.proto == IPPROTO_ICMP:
        if state.hook == NF_INET_PRE_ROUTING and skb.net.sysctl.values[CHECKSUM_KEY]:
            csum_kept_by_conntrack(skb)  # nf_conntrack_icmpv4_error()'s sum (left out: INVALID when it fails)
        if (t.dport >> 8) in ERROR_TYPES:
            return icmp_error(skb, state, t)
    return nf_conntrack_in(skb, state, t)


def ipv6_conntrack_in(skb: SkBuff, state: NfHookState) -> int:
    """ipv6_conntrack_in(): nf_conntrack_in() of an IPv6 packet, its transport
    header found by ipv6_get_l4proto(); nf_conntrack_icmpv6_error() first for
    ICMPv6 (neighbour discovery untracked, errors RELATED)."""
    if skb.nfct is not None and not skb.nfct.status & IPS_TEMPLATE:
        return NF_ACCEPT
    buf, nh = skb.buf, skb.network_header
    th, proto, frag_off = ipv6_skip_exthdr(buf, nh + ipv6.IPV6_HLEN, buf[nh + ipv6.NEXTHDR], skb.tail)
    if th < 0 or frag_off & ~0x7:
        return _invalid(skb, state, "can't find proto in pkt")
    if proto == ipv6.IPPROTO_ICMPV6:
        if th + icmpv6.ICMPV6_HLEN > skb.tail:
            return _invalid(skb, state, "short packet")
        icmp_type = icmpv6.Icmpv6Message(buf, th).type
        if icmp_type in ICMPV6_NOCT_VALID_NEW:
            skb.nfct, skb.ctinfo = UNTRACKED, IP_CT_UNTRACKED
            return NF_ACCEPT
        if icmpv6.is_error(icmp_type):
            return icmpv6_error(skb, state, th)
    saddr, daddr = ipv6.ADDRS.unpack_from(buf, nh)
    t = packet_tuple6(buf, th, proto, saddr, daddr)
    if t is None:
        return _invalid(skb, state, "no L4 header")
    return nf_conntrack_in(skb, state, t, th)


def nf_conntrack_in(skb: SkBuff, state: NfHookState, t: Tuple, ipv6_th: int = 0) -> int:
    """nf_conntrack_in(): resolve_normal_ct() then the protocol tracker
    (`ipv6_th`: where an IPv6 packet's transport header is)."""
    net = skb.net
    while True:
        hit = nf_ct_find(net, t)
        if hit is None:
            if not _nf_conntrack_alloc_room(net, t):
                net.conntrack.stats["drop"] += 1
                net.tracer.hop(skb, state.stage, "nf_conntrack_in", "DROP", "table full, dropping packet")
                return NF_DROP
            t = shared_tuple(net.conntrack, t)
            ct, direction, ctinfo, confirmed = NfConn(t, invert_tuple(t)), IP_CT_DIR_ORIGINAL, IP_CT_NEW, False
            template = skb.nfct  # `ct zone set` before conntrack (nf_ct_zone_tmpl()): the entry's zone
            if template is not None:
                ct.zone = template.zone
                if template.synproxy is not None:  # init_conntrack(): the SYN proxy's extensions
                    nfct_seqadj_ext_add(ct)
                    ct.synproxy = NfConnSynproxy()
            if net.conntrack.acct or net.sysctl.values[ACCT_KEY]:  # nf_ct_acct_ext_add()
                ct.acct = [[0, 0], [0, 0]]
        else:
            ct, direction = hit
            confirmed = True
            if direction == IP_CT_DIR_REPLY:
                ctinfo = IP_CT_ESTABLISHED_REPLY
            else:
                ctinfo = IP_CT_ESTABLISHED if ct.status & IPS_SEEN_REPLY else IP_CT_NEW
        why = nf_conntrack_handle_packet(skb, state, ct, direction, confirmed, ipv6_th)
        if why is None:
            break
        if why is not proto_tcp.TCP_REPEAT:
            return _invalid(skb, state, why)
    if ctinfo == IP_CT_ESTABLISHED_REPLY:
        nf_ct_set_status(ct, IPS_SEEN_REPLY)
    acct = ct.acct
    if acct is not None:  # nf_ct_acct_update(): the IP packet's length
        acct[direction][0] += 1
        acct[direction][1] += skb.tail - skb.network_header
    skb.nfct, skb.ctinfo = ct, ctinfo
    journey = skb.journey
    if journey is not None:
        # the hop is the same for every packet of an entry in one state whose
        # tuples are unchanged (its summary reads only them): built once
        key = (state.stage, ctinfo, ct.original, ct.reply)
        hop = net.conntrack.hops.get(key)
        if hop is None:
            hop = _conntrack_in_hop(net.conntrack, key, ct)
        journey.hops.append(hop)
    return NF_ACCEPT


def _conntrack_in_hop(table: ConntrackTable, key: tuple, ct: NfConn) -> Hop:
    """A new entry of nf_conntrack_in's hop cache, keyed (stage, ctinfo, tuples)."""
    stage, ctinfo = key[0], key[1]
    if len(table.hops) >= HOP_CACHE_SIZE:
        table.hops.clear()
    hop = table.hops[key] = Hop(stage, "nf_conntrack_in", _CTINFO_NAMES[ctinfo], ct_summary(ct))
    return hop


_CTINFO_NAMES = {IP_CT_NEW: "NEW", IP_CT_ESTABLISHED: "ESTABLISHED", IP_CT_ESTABLISHED_REPLY: "ESTABLISHED_REPLY",
                 IP_CT_RELATED: "RELATED", IP_CT_RELATED_REPLY: "RELATED_REPLY"}


def _invalid(skb: SkBuff, state: NfHookState, why: str) -> int:
    skb.nfct, skb.ctinfo = None, 0
    skb.net.conntrack.stats["invalid"] += 1
    skb.net.tracer.hop(skb, state.stage, "nf_conntrack_in", "INVALID", why)
    return NF_ACCEPT


def icmpv6_error(skb: SkBuff, state: NfHookState, th: int) -> int:
    """nf_conntrack_icmpv6_error() -> nf_conntrack_inet_error(): an ICMPv6
    error is RELATED to the entry of the packet it quotes (its transport
    header found past the quoted header's extension headers)."""
    net, buf = skb.net, skb.buf
    inner = icmpv6.Icmpv6Message(buf, th).quoted_offset
    if inner + ipv6.IPV6_HLEN > skb.tail:
        return _invalid(skb, state, "ICMPv6 error too short")
    inner_th, proto, frag_off = ipv6_skip_exthdr(buf, inner + ipv6.IPV6_HLEN, buf[inner + ipv6.NEXTHDR], skb.tail)
    inner_tuple = None
    if inner_th >= 0 and not frag_off & ~0x7:
        saddr, daddr = ipv6.ADDRS.unpack_from(buf, inner)
        inner_tuple = packet_tuple6(buf, inner_th, proto, saddr, daddr)
    hit = nf_ct_find(net, invert_tuple(inner_tuple)) if inner_tuple else None
    if hit is None:
        return _invalid(skb, state, "ICMPv6 error for no known connection")
    ct, direction = hit
    skb.nfct, skb.ctinfo = ct, IP_CT_RELATED if direction == IP_CT_DIR_ORIGINAL else IP_CT_RELATED_REPLY
    net.tracer.hop(skb, state.stage, "nf_conntrack_in", _CTINFO_NAMES[skb.ctinfo], ct_summary(ct))
    return NF_ACCEPT


def icmp_error(skb: SkBuff, state: NfHookState, t: Tuple) -> int:
    """icmp_error_message(): an error is RELATED to the entry of the packet it quotes."""
    net = skb.net
    inner = Ipv4Packet(skb.buf, skb.network_header).payload_offset + icmp.QUOTED
    if inner + ipv4.IPV4_MIN_HLEN > skb.tail:
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


def _nf_conntrack_alloc_room(net, t: Tuple | None) -> bool:
    """__nf_conntrack_alloc(): past nf_conntrack_max only if early_drop() frees
    room. `t` is None for ctnetlink's nf_conntrack_alloc(), whose hash is 0."""
    limit = net.sysctl.values[MAX_KEY]
    if limit == 0 or net.conntrack.count < limit:
        return True
    buckets = net.sysctl.values[BUCKETS_KEY]
    return early_drop(net, 0 if t is None else ct_bucket(net, t, buckets), buckets)


def ct_bucket(net, t: Tuple, buckets: int) -> int:
    return hash((t, net.conntrack.hash_seed)) % buckets


def early_drop(net, first: int, buckets: int) -> bool:
    """Evict the non-ASSURED entries of the first of 8 buckets (from the new
    tuple's) that has any; expired entries met on the way are reaped."""
    table = net.conntrack
    window = {(first + i) % buckets: i for i in range(min(NF_CT_EVICTION_RANGE, buckets))}
    chains: list[list[NfConn]] = [[] for _ in window]
    for tuple_, ct in reversed(table.hash.items()):  # chains are head-inserted: newest first
        index = window.get(ct_bucket(net, tuple_, buckets))
        if index is not None:
            chains[index].append(ct)
    now = net.clock.now
    for chain in chains:
        drops = 0
        for ct in chain:
            if table.hash.get(ct.original) is not ct:  # evicted earlier in this chain
                continue
            if ct.timeout <= now:
                nf_ct_delete(net, ct)
            elif not ct.status & IPS_ASSURED:
                nf_ct_delete(net, ct)
                drops += 1
        if drops:
            table.stats["early_drop"] += drops
            return True
    return False


def nf_conntrack_handle_packet(skb: SkBuff, state: NfHookState, ct: NfConn, direction: int,
                               confirmed: bool, ipv6_th: int = 0) -> str | None:
    """The protocol tracker: state and timeout. None when the packet is accepted,
    else why it is INVALID, or proto_tcp.TCP_REPEAT to look up again."""
    proto = ct.original.proto
    net = skb.net
    if proto == IPPROTO_UDP:
        error = udp_error(skb, ipv6_th, state.hook == NF_INET_PRE_ROUTING)
        if error is not None:
            return f"udp: {error}"
        if not ipv6_th and state.hook == NF_INET_PRE_ROUTING and net.sysctl.values[CHECKSUM_KEY]:
            # udp_error()'s sum, kept (netfilter/utils.py). A datagram without one is not
            # summed, which no reader tells apart: reject skips UDP with sum 0
            csum_kept_by_conntrack(skb)
        return nf_conntrack_udp_packet(net, ct, confirmed)
    if proto == IPPROTO_TCP:
        verdict, why = proto_tcp.tcp_packet(skb, ct, direction, confirmed, state.hook == NF_INET_PRE_ROUTING,
                                            ipv6_th)
        if verdict == proto_tcp.TCP_ACCEPT:
            return None
        return proto_tcp.TCP_REPEAT if verdict == proto_tcp.TCP_REPEAT else why
    if proto == IPPROTO_ICMP:
        if not confirmed and (ct.original.dport >> 8) not in ICMP_REQUESTS:
            return "ICMP type that cannot start a connection"
        ct.timeout = net.clock.now + net.sysctl.values[ICMP_TIMEOUT_KEY]
        return None
    if proto == ipv6.IPPROTO_ICMPV6:
        if not confirmed and (ct.original.dport >> 8) not in ICMPV6_VALID_NEW:
            return "icmpv6: can't create new conntrack with type"  # icmpv6_new()
        ct.timeout = net.clock.now + net.sysctl.values[ICMPV6_TIMEOUT_KEY]
        return None
    ct.timeout = net.clock.now + net.sysctl.values[GENERIC_TIMEOUT_KEY]
    return None


def udp_error(skb: SkBuff, ipv6_th: int, prerouting: bool) -> str | None:
    """udp_error() (nf_conntrack_proto_udp.c), what its udp_error_log() says: a
    header cut short ("short packet"), a UDP length past the packet's end or short
    of its header ("truncated/malformed packet": a first fragment conntrack sees
    unreassembled); at PREROUTING with nf_conntrack_checksum, a checksum that does
    not verify ("bad checksum": nf_checksum() over all skb->len - dataoff bytes
    against the IPv4 or IPv6 pseudo-header; an IPv6 routing header's final
    destination does not count), but none for a zero checksum, which means none
    was sent. None: no error."""
    buf, tail = skb.buf, skb.tail
    th = ipv6_th or skb.network_header + HEADER_LEN[buf[skb.network_header]]
    if th + UDP_HLEN > tail:
        return "short packet"
    _, _, length, check = _udp_header(buf, th)
    if length > tail - th or length < UDP_HLEN:
        return "truncated/malformed packet"
    if not prerouting or not check or not skb.net.sysctl.values["net.netfilter.nf_conntrack_checksum"]:
        return None
    nh, udplen = skb.network_header, tail - th
    pseudo = (ipv6.pseudo_header_sum(buf, nh, IPPROTO_UDP, udplen) if ipv6_th
              else ipv4.pseudo_header_sum(buf, nh, IPPROTO_UDP, udplen))
    return "bad checksum" if checksum(memoryview(buf)[th:tail], pseudo) else None


def nf_conntrack_udp_packet(net, ct: NfConn, confirmed: bool) -> None:
    """A stream (replied, and still active 2 s after it began) is ASSURED and
    gets the long timeout."""
    now = net.clock.now
    if not confirmed:
        ct.proto = now + 2.0
    if ct.status & IPS_SEEN_REPLY:
        if now > ct.proto:  # stream_ts
            nf_ct_set_status(ct, IPS_ASSURED)
            ct.timeout = now + net.sysctl.values[UDP_STREAM_KEY]
            return None
    ct.timeout = now + net.sysctl.values[UDP_TIMEOUT_KEY]
    return None


def nf_confirm(skb: SkBuff, state: NfHookState) -> int:
    """ipv4_confirm() / ipv6_confirm() -> __nf_conntrack_confirm(): an
    unconfirmed entry goes into the table, but not by a packet of the reply
    direction (`CTINFO2DIR(ctinfo) != IP_CT_DIR_ORIGINAL`: an ICMP error or RST
    nf_ct_attach() gave the entry of a packet dropped before its confirmation)."""
    ct = skb.nfct
    if ct is None or ct is UNTRACKED:
        return NF_ACCEPT
    status = ct.status
    if status & IPS_SEQ_ADJUST and skb.ctinfo != IP_CT_RELATED_REPLY and not nf_is_loopback_packet(skb):
        _seq_adjust(skb, state, ct)
    if status & IPS_CONFIRMED or skb.ctinfo >= IP_CT_IS_REPLY:
        return NF_ACCEPT
    net = skb.net
    if any(t in net.conntrack.hash for t in ct.tuplehash):
        net.conntrack.stats["insert_failed"] += 1
        return NF_ACCEPT  # a clash: the other entry won (nf_ct_resolve_clash)
    nf_conntrack_hash_insert(net, ct)
    net.tracer.hop(skb, state.stage, "nf_confirm", "CONFIRMED", ct_summary(ct))
    return NF_ACCEPT


def _seq_adjust(skb: SkBuff, state: NfHookState, ct: NfConn) -> None:
    """nf_confirm()'s nf_ct_seq_adjust() of a TCP segment (IPv6: past its
    extension headers, not a fragment)."""
    buf, nh = skb.buf, skb.network_header
    if ct.l3num == AF_INET:
        th = nh + HEADER_LEN[buf[nh]]
    else:
        th, _, frag_off = ipv6_skip_exthdr(buf, nh + ipv6.IPV6_HLEN, buf[nh + ipv6.NEXTHDR], skb.tail)
        if th < 0 or frag_off & ~0x7:
            return
    nf_ct_seq_adjust(buf, th, ct, skb.ctinfo)
    skb.net.tracer.hop(skb, state.stage, "nf_ct_seq_adjust", "SEQADJ", Lazy(_seqadj_text, ct, skb.ctinfo))


def _seqadj_text(ct: NfConn, ctinfo: int) -> str:
    direction = ct_direction(ctinfo)
    seq_off, ack_off = nf_ct_seq_offset(ct, direction, 0), nf_ct_seq_offset(ct, 1 - direction, 0)
    return f"seq +{seq_off}, ack -{ack_off}"


def ct_summary(ct: NfConn) -> Lazy:
    """The entry's tuples as they are now, formatted when read."""
    return Lazy(_tuples_text, ct.original, ct.reply)


def _tuples_text(o: Tuple, r: Tuple) -> str:
    return (f"{_endpoint(o.src, o.sport)} > {_endpoint(o.dst, o.dport)} / "
            f"reply {_endpoint(r.src, r.sport)} > {_endpoint(r.dst, r.dport)}")


def _endpoint(addr, port: int) -> str:
    return f"{ip_str(addr)}:{port}" if addr.__class__ is int else f"[{ipv6.addr_str(addr)}]:{port}"
