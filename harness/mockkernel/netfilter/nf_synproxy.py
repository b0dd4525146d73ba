"""SYN proxy (net/netfilter/nf_synproxy_core.c; the cookies of
net/ipv4/syncookies.c __cookie_v4_init_sequence()/__cookie_v4_check() and
net/ipv6/syncookies.c __cookie_v6_init_sequence()/__cookie_v6_check()).

The proxy answers a client's SYN itself and opens the connection to the
server only once the client has shown it is real:
- the SYN (nft `synproxy`, iptables `-j SYNPROXY`, in a chain at input or
  forward): synproxy_send_client_synack() answers with a SYN-ACK whose ISN is
  a SYN cookie (the client's MSS encoded as its msstab index), window 0, and
  the proxy's options: MSS (the configured value), and with timestamps the
  configured window scale and SACK-permitted, the client's own window scale,
  SACK-permitted and ECN encoded in the low 6 bits of TSval
  (synproxy_init_timestamp_cookie()); the SYN is consumed (NF_STOLEN).
- the client's ACK: synproxy_recv_client_ack() checks the cookie (a bad one:
  NF_DROP, cookie_invalid) and sends the server a SYN with the client's
  sequence number, the MSS from the cookie and the options the timestamp
  echo carries back, its ACK field carrying the cookie; it leaves with the
  per-namespace template entry (synproxy_net's tmpl), so conntrack gives the
  connection's entry the seqadj and synproxy extensions (init_conntrack()).
- ipv4_synproxy_hook() / ipv6_synproxy_hook() at LOCAL_IN and POST_ROUTING
  (just before conntrack's confirm): on that SYN (SYN_SENT) they note the
  cookie (isn) and the proxy's timestamp (its); on the server's SYN-ACK
  (SYN_RECV) they send the server the ACK completing its handshake, set the
  reply direction's sequence offset (cookie - server's ISN: nf_ct_seqadj_init())
  and the timestamp offset (tsoff), and send the client an ACK opening its
  window, and consume the SYN-ACK; every later segment of the entry has its
  timestamps shifted by tsoff (synproxy_tstamp_adjust()) and, in nf_confirm(),
  its sequence numbers by the offset (nf_conntrack_seqadj.py). A client ACK
  that comes again while the entry is in SYN_SENT re-sends the server SYN
  (cookie_retrans); a new SYN on a CLOSEd entry resets the offsets
  (conn_reopened). Packets looped back (nf_is_loopback_packet()) are left
  alone.
The hooks are registered per namespace and family while a synproxy
expression or object uses them (nf_synproxy_ipv4_init() and _fini()'s
refcount). /proc/net/stat/synproxy counts syn_received, cookie_invalid,
cookie_valid, cookie_retrans and conn_reopened (one CPU).
The cookie is the mock's (syncookies.py: BLAKE2s keyed per namespace where the
kernel uses siphash with a boot secret): what it encodes and how it is checked
are the kernel's, its value is not. Every packet is checksummed as one that
came with CHECKSUM_NONE (veth's): nf_ip_checksum()'s skipping of packets a NIC
verified (CHECKSUM_COMPLETE, CHECKSUM_UNNECESSARY) is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv4.ip_output import ip_local_out
from harness.mockkernel.ipv4.syncookies import MSSTAB, MSSTAB6, check_tcp_syn_cookie, secure_tcp_syn_cookie
from harness.mockkernel.ipv4.tcp_sock import tcp_clock_ms
from harness.mockkernel.ipv6 import ip6_output
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NF_INET_POST_ROUTING,
                                               NF_IP_PRI_CONNTRACK_CONFIRM, NF_STOLEN, NFPROTO_IPV4, NFPROTO_IPV6)
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_DIR_ORIGINAL, IP_CT_ESTABLISHED_REPLY, IP_CT_NEW,
                                                       IPS_CONFIRMED, IPS_TEMPLATE, NfConn, NfConnSynproxy, Tuple,
                                                       ct_direction, nf_is_loopback_packet)
from harness.mockkernel.netfilter.nf_conntrack_proto_tcp import sCL, sSR, sSS
from harness.mockkernel.netfilter.nf_conntrack_seqadj import nf_ct_seqadj_init
from harness.mockkernel.wire import ipv4, ipv6, tcp
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_TCP, Ipv4Packet
from harness.mockkernel.wire.tcp import (TCPHDR_ACK, TCPHDR_CWR, TCPHDR_ECE, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN,
                                         OutOptions)

# include/uapi/linux/netfilter/nf_synproxy.h
NF_SYNPROXY_OPT_MSS, NF_SYNPROXY_OPT_WSCALE, NF_SYNPROXY_OPT_SACK_PERM = 0x01, 0x02, 0x04
NF_SYNPROXY_OPT_TIMESTAMP, NF_SYNPROXY_OPT_ECN = 0x08, 0x10
NF_SYNPROXY_OPT_MASK = NF_SYNPROXY_OPT_MSS | NF_SYNPROXY_OPT_WSCALE | NF_SYNPROXY_OPT_SACK_PERM \
    | NF_SYNPROXY_OPT_TIMESTAMP
TCP_MAX_WSCALE = 14
U32 = 0xFFFFFFFF
STATS = ("syn_received", "cookie_invalid", "cookie_valid", "cookie_retrans", "conn_reopened")


@dataclass(frozen=True)
class NfSynproxyInfo:
    """struct nf_synproxy_info: the options to offer (NF_SYNPROXY_OPT_*), the MSS and window scale."""

    options: int = 0
    wscale: int = 0
    mss: int = 0


@dataclass
class SynproxyOptions:
    """struct synproxy_options."""

    options: int = 0
    wscale: int = 0
    tsval: int = 0
    tsecr: int = 0
    mss_option: int = 0
    mss_encode: int = 0


class SynproxyNet:
    """struct synproxy_net: the template entry, the stats, the hooks' refcounts."""

    def __init__(self) -> None:
        self.tmpl = NfConn(Tuple(0, 0, 0, 0, 0), Tuple(0, 0, 0, 0, 0), status=IPS_TEMPLATE | IPS_CONFIRMED,
                           synproxy=NfConnSynproxy())
        self.stats = dict.fromkeys(STATS, 0)
        self.hook_ref = {NFPROTO_IPV4: 0, NFPROTO_IPV6: 0}
        self.hooks: dict[int, list] = {}


def synproxy_pernet(net) -> SynproxyNet:
    """synproxy_net_init() on first use: the template, the stats and /proc/net/stat/synproxy."""
    snet = net.synproxy
    if snet is None:
        snet = net.synproxy = SynproxyNet()
        net.proc_net["stat/synproxy"] = synproxy_cpu_seq_show
    return snet


def synproxy_cpu_seq_show(net) -> str:
    """/proc/net/stat/synproxy: the header, then one line per CPU (one here)."""
    stats = synproxy_pernet(net).stats
    return ("entries\t\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n"
            + "\t".join(f"{value:08x}" for value in (0, *(stats[name] for name in STATS))) + "\n")


def nf_synproxy_init(net, pf: int) -> None:
    """nf_synproxy_ipv4_init() / nf_synproxy_ipv6_init(): the hooks, on the first user."""
    snet = synproxy_pernet(net)
    if snet.hook_ref[pf] == 0:
        hook = ipv4_synproxy_hook if pf == NFPROTO_IPV4 else ipv6_synproxy_hook
        name = "ipv4_synproxy_hook" if pf == NFPROTO_IPV4 else "ipv6_synproxy_hook"
        snet.hooks[pf] = [net.nf_hooks.register(pf, hooknum, NF_IP_PRI_CONNTRACK_CONFIRM - 1, name, hook)
                          for hooknum in (NF_INET_LOCAL_IN, NF_INET_POST_ROUTING)]
    snet.hook_ref[pf] += 1


def nf_synproxy_fini(net, pf: int) -> None:
    """nf_synproxy_ipv4_fini() / _ipv6_fini(): the hooks go with the last user."""
    snet = synproxy_pernet(net)
    snet.hook_ref[pf] -= 1
    if snet.hook_ref[pf] == 0:
        for entry in snet.hooks.pop(pf):
            net.nf_hooks.unregister(entry)


# ------------------------------------------------------------------ options

def synproxy_parse_options(buf: bytearray, th: int, tail: int) -> SynproxyOptions | None:
    """synproxy_parse_options(): MSS, window scale (at most 14), timestamps and
    SACK-permitted of the right lengths; None when the options are not all there."""
    doff = tcp.DATA_OFFSET_LEN[buf[th + tcp.DOFF]]
    if th + max(doff, tcp.TCP_HLEN) > tail:
        return None
    opts = SynproxyOptions()
    for kind, ptr, size in tcp.options(buf, th, doff):
        if kind == tcp.TCPOPT_MSS and size == tcp.TCPOLEN_MSS:
            opts.mss_option = tcp.option_field(buf, ptr, 2, 2)
            opts.options |= NF_SYNPROXY_OPT_MSS
        elif kind == tcp.TCPOPT_WINDOW and size == tcp.TCPOLEN_WINDOW:
            opts.wscale = min(tcp.option_byte(buf, ptr), TCP_MAX_WSCALE)
            opts.options |= NF_SYNPROXY_OPT_WSCALE
        elif kind == tcp.TCPOPT_TIMESTAMP and size == tcp.TCPOLEN_TIMESTAMP:
            opts.tsval, opts.tsecr = tcp.option_field(buf, ptr, 2, 4), tcp.option_field(buf, ptr, 6, 4)
            opts.options |= NF_SYNPROXY_OPT_TIMESTAMP
        elif kind == tcp.TCPOPT_SACK_PERM and size == tcp.TCPOLEN_SACK_PERM:
            opts.options |= NF_SYNPROXY_OPT_SACK_PERM
    return opts


def synproxy_build_options(opts: SynproxyOptions) -> bytes:
    """synproxy_build_options() (the layout of tcp_options_write())."""
    options = opts.options
    return tcp.write_options(OutOptions(
        mss=opts.mss_option if options & NF_SYNPROXY_OPT_MSS else None,
        ws=opts.wscale if options & NF_SYNPROXY_OPT_WSCALE else None,
        sack_ok=bool(options & NF_SYNPROXY_OPT_SACK_PERM),
        ts=(opts.tsval, opts.tsecr) if options & NF_SYNPROXY_OPT_TIMESTAMP else None))


def synproxy_init_timestamp_cookie(net, info: NfSynproxyInfo, opts: SynproxyOptions) -> None:
    """synproxy_init_timestamp_cookie(): TSval now with the client's window
    scale (0xf: none), SACK-permitted and ECN in its low 6 bits; the client's
    TSval echoed; our window scale the configured one."""
    opts.tsecr = opts.tsval
    opts.tsval = tcp_clock_ms(net) & ~0x3F
    if opts.options & NF_SYNPROXY_OPT_WSCALE:
        opts.tsval |= opts.wscale
        opts.wscale = info.wscale
    else:
        opts.tsval |= 0xF
    if opts.options & NF_SYNPROXY_OPT_SACK_PERM:
        opts.tsval |= 1 << 4
    if opts.options & NF_SYNPROXY_OPT_ECN:
        opts.tsval |= 1 << 5


def synproxy_check_timestamp_cookie(opts: SynproxyOptions) -> None:
    """synproxy_check_timestamp_cookie(): the client's options back from the echoed TSval."""
    opts.wscale = opts.tsecr & 0xF
    if opts.wscale != 0xF:
        opts.options |= NF_SYNPROXY_OPT_WSCALE
    if opts.tsecr & (1 << 4):
        opts.options |= NF_SYNPROXY_OPT_SACK_PERM
    if opts.tsecr & (1 << 5):
        opts.options |= NF_SYNPROXY_OPT_ECN


def synproxy_syn_options(net, info: NfSynproxyInfo, flags: int, opts: SynproxyOptions) -> None:
    """What the SYN-ACK offers (nft_synproxy_tcp_options(), synproxy_tg4()):
    the client's options the proxy is configured for, our MSS; without
    timestamps no window scale, SACK or ECN (they ride in the TSval)."""
    synproxy_pernet(net).stats["syn_received"] += 1
    if flags & TCPHDR_ECE and flags & TCPHDR_CWR:
        opts.options |= NF_SYNPROXY_OPT_ECN
    opts.options &= info.options
    opts.mss_encode = opts.mss_option
    opts.mss_option = info.mss
    if opts.options & NF_SYNPROXY_OPT_TIMESTAMP:
        synproxy_init_timestamp_cookie(net, info, opts)
    else:
        opts.options &= ~(NF_SYNPROXY_OPT_WSCALE | NF_SYNPROXY_OPT_SACK_PERM | NF_SYNPROXY_OPT_ECN)


# ------------------------------------------------------------------ cookies

def _addresses(buf: bytearray, nh: int) -> tuple:
    if Ipv4Packet(buf, nh).version == 4:
        return ipv4.ADDRS.unpack_from(buf, nh)
    return ipv6.ADDRS.unpack_from(buf, nh)


def cookie_init_sequence(net, buf: bytearray, nh: int, th: int, mss: int) -> int:
    """__cookie_v4_init_sequence() / __cookie_v6_init_sequence(): the cookie
    for this SYN, encoding the largest msstab entry not above `mss`."""
    msstab = MSSTAB if Ipv4Packet(buf, nh).version == 4 else MSSTAB6
    mssind = next((index for index in range(len(msstab) - 1, 0, -1) if mss >= msstab[index]), 0)
    saddr, daddr = _addresses(buf, nh)
    sport, dport, seq = tcp.HEADER.unpack_from(buf, th)[:3]
    return secure_tcp_syn_cookie(net, saddr, daddr, sport, dport, seq, mssind)


def cookie_check(net, buf: bytearray, nh: int, th: int) -> int:
    """__cookie_v4_check() / __cookie_v6_check() of the ACK's ack - 1: the MSS, 0 for a bad cookie."""
    msstab = MSSTAB if Ipv4Packet(buf, nh).version == 4 else MSSTAB6
    saddr, daddr = _addresses(buf, nh)
    sport, dport, seq, ack_seq = tcp.HEADER.unpack_from(buf, th)[:4]
    mssind = check_tcp_syn_cookie(net, (ack_seq - 1) & U32, saddr, daddr, sport, dport, (seq - 1) & U32)
    return msstab[mssind] if mssind < len(msstab) else 0


# ------------------------------------------------------------------ sending

def synproxy_send_tcp(net, skb, saddr, daddr, segment: bytearray, nfct, ctinfo: int, why: str) -> None:
    """synproxy_send_tcp() / synproxy_send_tcp_ipv6(): the segment in a new
    IP header (TOS 0, ID 0, DF, the default TTL; IPv6: no traffic class or
    flow label, the all-interfaces hop limit), routed (ip_route_me_harder(),
    nf_ip6_route()), with the entry given, out through ip_local_out()."""
    if saddr.__class__ is int:
        rt = route.ip_route_output(net, daddr, saddr)
        if rt.__class__ is int:
            return
        header = ipv4.build_header(saddr, daddr, IPPROTO_TCP, len(segment),
                                   ttl=net.sysctl.values["net.ipv4.ip_default_ttl"], ident=0, frag_off=IP_DF)
    else:
        rt = route6.ip6_route_output(net, daddr, saddr=saddr, proto=IPPROTO_TCP)
        if rt.error:
            return
        header = ipv6.build_header(saddr, daddr, IPPROTO_TCP, len(segment),
                                   net.sysctl.values["net.ipv6.conf.all.hop_limit"])
    nskb = alloc_skb(bytes(header + segment))
    nskb.net, nskb.dst, nskb.dev = net, rt, rt.dev
    nskb.network_header, nskb.transport_header = nskb.data, nskb.data + len(header)
    if nfct is not None:
        nskb.nfct, nskb.ctinfo = nfct, ctinfo
    if saddr.__class__ is int:
        net.tracer.start(nskb, f"{why}: {Ipv4Packet(nskb.buf, nskb.data).summary()}", parent=skb)
        ip_local_out(nskb)
    else:
        net.tracer.start(nskb, f"{why}: {ipv6.Ipv6Packet(nskb.buf, nskb.data).summary()}", parent=skb)
        ip6_output.ip6_local_out(nskb)


def _segment(saddr, daddr, sport: int, dport: int, seq: int, ack_seq: int, flags: int, window: int,
             opts: SynproxyOptions) -> bytearray:
    return tcp.build_segment(saddr, daddr, sport, dport, seq & U32, ack_seq & U32, flags, window,
                             synproxy_build_options(opts))


def synproxy_send_client_synack(net, skb, th: int, opts: SynproxyOptions) -> None:
    """synproxy_send_client_synack() / _ipv6(): SYN-ACK, the cookie as ISN, window 0."""
    buf, nh = skb.buf, skb.network_header
    saddr, daddr = _addresses(buf, nh)
    sport, dport, seq = tcp.HEADER.unpack_from(buf, th)[:3]
    cookie = cookie_init_sequence(net, buf, nh, th, opts.mss_encode)
    flags = TCPHDR_SYN | TCPHDR_ACK | (TCPHDR_ECE if opts.options & NF_SYNPROXY_OPT_ECN else 0)
    segment = _segment(daddr, saddr, dport, sport, cookie, seq + 1, flags, 0, opts)
    synproxy_send_tcp(net, skb, daddr, saddr, segment, skb.nfct, IP_CT_ESTABLISHED_REPLY,
                      "synproxy_send_client_synack")


def synproxy_send_server_syn(net, skb, th: int, opts: SynproxyOptions, recv_seq: int) -> None:
    """synproxy_send_server_syn() / _ipv6(): the client's SYN again, its ACK
    field relaying the cookie (our ISN) to the hook, with the template entry."""
    buf, nh = skb.buf, skb.network_header
    saddr, daddr = _addresses(buf, nh)
    sport, dport, _, ack_seq, _, _, window = tcp.HEADER.unpack_from(buf, th)[:7]
    flags = TCPHDR_SYN | (TCPHDR_ECE | TCPHDR_CWR if opts.options & NF_SYNPROXY_OPT_ECN else 0)
    segment = _segment(saddr, daddr, sport, dport, recv_seq - 1, ack_seq - 1, flags, window, opts)
    synproxy_send_tcp(net, skb, saddr, daddr, segment, synproxy_pernet(net).tmpl, IP_CT_NEW,
                      "synproxy_send_server_syn")


def synproxy_send_server_ack(net, ct: NfConn, skb, th: int, opts: SynproxyOptions) -> None:
    """synproxy_send_server_ack() / _ipv6(): the ACK of the server's SYN-ACK,
    the window the client has advertised so far (td_maxwin), no entry given."""
    buf, nh = skb.buf, skb.network_header
    saddr, daddr = _addresses(buf, nh)
    sport, dport, seq, ack_seq = tcp.HEADER.unpack_from(buf, th)[:4]
    window = ct.proto.seen[IP_CT_DIR_ORIGINAL].td_maxwin & 0xFFFF
    segment = _segment(daddr, saddr, dport, sport, ack_seq, seq + 1, TCPHDR_ACK, window, opts)
    synproxy_send_tcp(net, skb, daddr, saddr, segment, None, 0, "synproxy_send_server_ack")


def synproxy_send_client_ack(net, skb, th: int, opts: SynproxyOptions) -> None:
    """synproxy_send_client_ack() / _ipv6(): an ACK to the client opening its
    window (the server's, unscaled by the server's shift), in the entry's reply direction."""
    buf, nh = skb.buf, skb.network_header
    saddr, daddr = _addresses(buf, nh)
    sport, dport, seq, ack_seq, _, _, window = tcp.HEADER.unpack_from(buf, th)[:7]
    segment = _segment(saddr, daddr, sport, dport, seq + 1, ack_seq, TCPHDR_ACK, window >> opts.wscale, opts)
    synproxy_send_tcp(net, skb, saddr, daddr, segment, skb.nfct, IP_CT_ESTABLISHED_REPLY,
                      "synproxy_send_client_ack")


def synproxy_recv_client_ack(net, skb, th: int, opts: SynproxyOptions, recv_seq: int) -> bool:
    """synproxy_recv_client_ack() / _ipv6(): a good cookie sends the server its SYN."""
    stats = synproxy_pernet(net).stats
    mss = cookie_check(net, skb.buf, skb.network_header, th)
    if mss == 0:
        stats["cookie_invalid"] += 1
        return False
    stats["cookie_valid"] += 1
    opts.mss_option = mss
    opts.options |= NF_SYNPROXY_OPT_MSS
    if opts.options & NF_SYNPROXY_OPT_TIMESTAMP:
        synproxy_check_timestamp_cookie(opts)
    synproxy_send_server_syn(net, skb, th, opts, recv_seq)
    return True


# ------------------------------------------------------------------ the targets

def synproxy_eval(net, skb, th: int, info: NfSynproxyInfo, xt: bool) -> int | None:
    """nft_synproxy_do_eval() (`xt` False) and synproxy_tg4()/synproxy_tg6()
    (True) past their protocol check: NF_STOLEN, NF_DROP, or None (the rule
    goes on: NFT_CONTINUE, XT_CONTINUE). nft acts on any SYN and on any
    other ACK; xt_SYNPROXY on a SYN without ACK, FIN or RST and on an ACK
    without SYN, FIN or RST."""
    buf = skb.buf
    if xt and Ipv4Packet(buf, skb.network_header).version == 6:
        if not nf_ip6_checksum_ok(buf, skb.network_header, th, skb.tail):
            return NF_DROP
    elif not nf_ip_checksum_ok(buf, skb.network_header, th, skb.tail):
        return NF_DROP
    opts = synproxy_parse_options(buf, th, skb.tail)
    if opts is None:
        return NF_DROP
    flags = buf[th + tcp.FLAGS]
    if xt:
        is_syn = flags & (TCPHDR_SYN | TCPHDR_ACK | TCPHDR_FIN | TCPHDR_RST) == TCPHDR_SYN
        is_ack = flags & (TCPHDR_SYN | TCPHDR_ACK | TCPHDR_FIN | TCPHDR_RST) == TCPHDR_ACK
    else:
        is_syn, is_ack = bool(flags & TCPHDR_SYN), bool(flags & TCPHDR_ACK)
    if is_syn:
        synproxy_syn_options(net, info, flags, opts)
        synproxy_send_client_synack(net, skb, th, opts)
        return NF_STOLEN
    if is_ack:
        seq = tcp.HEADER.unpack_from(buf, th)[2]
        return NF_STOLEN if synproxy_recv_client_ack(net, skb, th, opts, seq) else NF_DROP
    return None


def nf_ip_checksum_ok(buf: bytearray, nh: int, th: int, end: int) -> bool:
    """nf_ip_checksum() of a CHECKSUM_NONE packet (as veth delivers them): the
    sum of everything from the network header (an IPv4 header adds nothing, its
    own checksum cancels it) and a pseudo-header of the addresses at bytes
    12-19 of that header. nft_synproxy_do_eval() calls it for IPv6 packets too,
    where those bytes are part of the source address and the IPv6 header is in
    the sum: a good segment fails it (but by chance), and the SYN is dropped."""
    saddr, daddr = ipv4.ADDRS.unpack_from(buf, nh)
    pseudo = (saddr >> 16) + (saddr & 0xFFFF) + (daddr >> 16) + (daddr & 0xFFFF) + IPPROTO_TCP + end - th
    return not checksum(memoryview(buf)[nh:end], pseudo)


def nf_ip6_checksum_ok(buf: bytearray, nh: int, th: int, end: int) -> bool:
    """nf_ip6_checksum() (xt_SYNPROXY's synproxy_tg6()): the segment over the IPv6 pseudo-header."""
    saddr, daddr = ipv6.ADDRS.unpack_from(buf, nh)
    return not checksum(memoryview(buf)[th:end], pseudo_header_sum(saddr, daddr, IPPROTO_TCP, end - th))


# ------------------------------------------------------------------ the hooks

def synproxy_tstamp_adjust(buf: bytearray, th: int, ctinfo: int, synproxy: NfConnSynproxy) -> None:
    """synproxy_tstamp_adjust(): the reply direction's TSval less tsoff, the
    original direction's TSecr plus it (up to options that run past the header)."""
    if synproxy.tsoff == 0:
        return
    for kind, ptr, size in tcp.options(buf, th, tcp.DATA_OFFSET_LEN[buf[th + tcp.DOFF]]):
        if kind == tcp.TCPOPT_TIMESTAMP and size == tcp.TCPOLEN_TIMESTAMP:
            if ct_direction(ctinfo) != IP_CT_DIR_ORIGINAL:
                at, delta = ptr + 2, -synproxy.tsoff
            else:
                at, delta = ptr + 6, synproxy.tsoff
            tcp.replace_u32(buf, th, at, (tcp.option_field(buf, ptr, at - ptr, 4) + delta) & U32)
            return


def ipv4_synproxy_hook(skb, state) -> int:
    """ipv4_synproxy_hook(): an IPv4 TCP segment of an entry the proxy opened."""
    buf, nh = skb.buf, skb.network_header
    if buf[nh + ipv4.PROTOCOL] != IPPROTO_TCP:
        return NF_ACCEPT
    return _synproxy_hook(skb, state, nh + ipv4.HEADER_LEN[buf[nh]], "ipv4_synproxy_hook")


def ipv6_synproxy_hook(skb, state) -> int:
    """ipv6_synproxy_hook(): the TCP header past the extension headers."""
    buf, nh = skb.buf, skb.network_header
    th, proto, _ = ipv6_skip_exthdr(buf, nh + ipv6.IPV6_HLEN, buf[nh + ipv6.NEXTHDR], skb.tail)
    if th < 0 or proto != IPPROTO_TCP:
        return NF_ACCEPT
    return _synproxy_hook(skb, state, th, "ipv6_synproxy_hook")


def _synproxy_hook(skb, state, th: int, name: str) -> int:
    ct = skb.nfct
    if ct is None or ct.synproxy is None or nf_is_loopback_packet(skb):
        return NF_ACCEPT
    if th + tcp.TCP_HLEN > skb.tail:
        return NF_DROP
    net, buf, ctinfo = skb.net, skb.buf, skb.ctinfo
    synproxy, snet = ct.synproxy, synproxy_pernet(skb.net)
    flags = buf[th + tcp.FLAGS]
    _, _, seq, ack_seq = tcp.HEADER.unpack_from(buf, th)[:4]
    original = ct_direction(ctinfo) == IP_CT_DIR_ORIGINAL
    tcp_state = ct.proto.state
    if tcp_state == sCL:
        if flags & TCPHDR_RST and not original:
            nf_ct_seqadj_init(ct, ctinfo, synproxy.isn - seq + 1)
            tcp_state = None
        elif not flags & TCPHDR_SYN or flags & TCPHDR_ACK or not original:
            tcp_state = None
        else:  # a reopened connection (nf_ct_seqadj_init() of 0 changes nothing)
            synproxy.tsoff = 0
            snet.stats["conn_reopened"] += 1
            tcp_state = sSS
    if tcp_state == sSS:
        opts = synproxy_parse_options(buf, th, skb.tail)
        if opts is None:
            return NF_DROP
        if not flags & TCPHDR_SYN and flags & TCPHDR_ACK and original:
            # the client's ACK again (keep-alives are sent at SND.NXT - 1: one more makes the SYN's)
            if synproxy_recv_client_ack(net, skb, th, opts, seq + 1):
                snet.stats["cookie_retrans"] += 1
                net.tracer.hop(skb, state.stage, name, "STOLEN", "the client's ACK again: the server's SYN resent")
                return NF_STOLEN
            return NF_DROP
        synproxy.isn = ack_seq
        if opts.options & NF_SYNPROXY_OPT_TIMESTAMP:
            synproxy.its = opts.tsecr
    elif tcp_state == sSR and flags & (TCPHDR_SYN | TCPHDR_ACK) == TCPHDR_SYN | TCPHDR_ACK:
        opts = synproxy_parse_options(buf, th, skb.tail)
        if opts is None:
            return NF_DROP
        if opts.options & NF_SYNPROXY_OPT_TIMESTAMP:
            synproxy.tsoff = (opts.tsval - synproxy.its) & U32
        opts.options &= ~(NF_SYNPROXY_OPT_MSS | NF_SYNPROXY_OPT_WSCALE | NF_SYNPROXY_OPT_SACK_PERM)
        opts.tsval, opts.tsecr = opts.tsecr, opts.tsval
        synproxy_send_server_ack(net, ct, skb, th, opts)
        nf_ct_seqadj_init(ct, ctinfo, synproxy.isn - seq)
        opts.tsval, opts.tsecr = opts.tsecr, opts.tsval
        synproxy_send_client_ack(net, skb, th, opts)
        net.tracer.hop(skb, state.stage, name, "STOLEN", "the server's SYN-ACK: ACKs sent to server and client")
        return NF_STOLEN
    synproxy_tstamp_adjust(buf, th, ctinfo, synproxy)
    return NF_ACCEPT
