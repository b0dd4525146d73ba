"""sock_diag for TCP: what `ss -t` reads (net/ipv4/inet_diag.c
inet_diag_dump_icsk(), inet_sk_diag_fill(), inet_twsk_diag_fill(),
inet_req_diag_fill(); net/ipv4/tcp_diag.c tcp_diag_get_info(); net/ipv4/tcp.c
tcp_get_info(); net/core/sock.c sk_get_meminfo()).

`inet_diag_dump_icsk(net, states, ext, family)` gives one InetDiagMsg per socket of
the namespace's TCP tables (net.tcp_hashinfo) of sk_family `family` (AF_INET6
for every socket an AF_INET6 application opened, its v4-mapped connections
too, whose addresses it gives as ::ffff:a.b.c.d; a request sock and a
TIME_WAIT sock have their socket's) whose state is in `states`, with
INET_DIAG_SKV6ONLY's value for a full AF_INET6 socket (inet_sk_diag_fill();
request and TIME_WAIT socks send none): the
listeners first, then the established table (full sockets, TIME_WAIT socks
and request socks, shown as SYN-RECV), as the kernel walks lhash2 then ehash;
within each, the mock's table order stands for the kernel's hash-bucket order.
Recv-Q and Send-Q are tcp_diag_get_info()'s: a listener's accept queue and
its limit, else rcv_nxt - copied_seq and write_seq - snd_una. With
INET_DIAG_INFO a full socket carries struct tcp_info as tcp_get_info() fills
it (a listener only its state, cwnd, reordering, pacing rates and, in
unacked/sacked, its accept queue and limit) and the congestion control's name;
with INET_DIAG_SKMEMINFO sk_get_meminfo()'s counters. TIME_WAIT and request
socks carry neither. Times are in jiffies of the lab's kernel (CONFIG_HZ=250):
tcpi_rto and tcpi_ato are jiffies_to_usecs() of them, the last-sent/received
ages jiffies_to_msecs() of tcp_jiffies32 differences.
Left out: timers (`ss -o`), MPTCP, BPF storage; fields of struct tcp_sock
the mock does not keep read as tcp_init_sock() left them (LEFT_AS_INITIALISED).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from harness.mockkernel.ipv4.inet_hashtables import v4mapped
from harness.mockkernel.ipv4.tcp_sock import AF_INET, TCP_LISTEN, TCP_NEW_SYN_RECV, TCP_SYN_RECV, TCP_TIME_WAIT

HZ = 250  # CONFIG_HZ of the lab's kernel: TCP's timers and ages are counted in these jiffies
# include/uapi/linux/inet_diag.h: the extensions a request asks for (bit INET_DIAG_x - 1)
INET_DIAG_MEMINFO, INET_DIAG_INFO, INET_DIAG_VEGASINFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO = 1, 2, 3, 4, 7
# include/uapi/linux/tcp.h tcpi_options bits
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE, TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN, TCPI_OPT_SYN_DATA = \
    1, 2, 4, 8, 16, 32
U32_MAX, U64_MAX = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
# tcp_sock fields the mock's TcpSock may not carry, and the value tcp_init_sock()/sk_alloc() gives them
LEFT_AS_INITIALISED = {"rate_delivered": 0, "rate_interval_us": 0, "delivered_ce": 0, "rcv_ooopack": 0,
                       "ecn_flags": 0, "sk_wmem_alloc": 0, "sk_omem_alloc": 0, "sk_backlog_len": 0}
TCP_ECN_OK, TCP_ECN_SEEN = 1, 8


@dataclass(slots=True)
class TcpDiagInfo:
    """struct tcp_info (include/uapi/linux/tcp.h), the fields ss reads, in its units."""

    tcpi_state: int = 0
    tcpi_ca_state: int = 0
    tcpi_retransmits: int = 0
    tcpi_probes: int = 0
    tcpi_backoff: int = 0
    tcpi_options: int = 0
    tcpi_snd_wscale: int = 0
    tcpi_rcv_wscale: int = 0
    tcpi_rto: int = 0  # us
    tcpi_ato: int = 0  # us
    tcpi_snd_mss: int = 0
    tcpi_rcv_mss: int = 0
    tcpi_unacked: int = 0
    tcpi_sacked: int = 0
    tcpi_lost: int = 0
    tcpi_retrans: int = 0
    tcpi_last_data_sent: int = 0  # ms
    tcpi_last_data_recv: int = 0
    tcpi_last_ack_recv: int = 0
    tcpi_pmtu: int = 0
    tcpi_rcv_ssthresh: int = 0
    tcpi_rtt: int = 0  # us
    tcpi_rttvar: int = 0
    tcpi_snd_ssthresh: int = 0
    tcpi_snd_cwnd: int = 0
    tcpi_advmss: int = 0
    tcpi_reordering: int = 0
    tcpi_rcv_rtt: int = 0
    tcpi_rcv_space: int = 0
    tcpi_total_retrans: int = 0
    tcpi_pacing_rate: int = 0  # bytes/s
    tcpi_max_pacing_rate: int = 0
    tcpi_bytes_acked: int = 0
    tcpi_bytes_received: int = 0
    tcpi_segs_out: int = 0
    tcpi_segs_in: int = 0
    tcpi_notsent_bytes: int = 0
    tcpi_min_rtt: int = 0
    tcpi_data_segs_in: int = 0
    tcpi_data_segs_out: int = 0
    tcpi_delivery_rate: int = 0
    tcpi_busy_time: int = 0
    tcpi_rwnd_limited: int = 0
    tcpi_sndbuf_limited: int = 0
    tcpi_delivered: int = 0
    tcpi_delivered_ce: int = 0
    tcpi_bytes_sent: int = 0
    tcpi_bytes_retrans: int = 0
    tcpi_dsack_dups: int = 0
    tcpi_reord_seen: int = 0
    tcpi_rcv_ooopack: int = 0
    tcpi_snd_wnd: int = 0
    tcpi_delivery_rate_app_limited: int = 0


TCP_INFO_FIELDS = tuple(f.name for f in fields(TcpDiagInfo))


@dataclass(slots=True)
class SkMeminfo:
    """sk_get_meminfo(): SK_MEMINFO_RMEM_ALLOC ... SK_MEMINFO_DROPS."""

    rmem_alloc: int
    rcvbuf: int
    wmem_alloc: int
    sndbuf: int
    fwd_alloc: int
    wmem_queued: int
    optmem: int
    backlog: int
    drops: int


@dataclass(slots=True)
class InetDiagMsg:
    """struct inet_diag_msg and the attributes asked for."""

    state: int
    saddr: int | bytes  # an integer for AF_INET, 16 bytes for AF_INET6
    sport: int
    daddr: int | bytes
    dport: int
    rqueue: int = 0
    wqueue: int = 0
    info: TcpDiagInfo | None = None  # INET_DIAG_INFO
    cong: str | None = None  # INET_DIAG_CONG
    skmeminfo: SkMeminfo | None = None  # INET_DIAG_SKMEMINFO
    family: int = AF_INET
    v6only: bool = False  # INET_DIAG_SKV6ONLY


def _tcp_field(sk, name: str) -> int:
    return getattr(sk, name, LEFT_AS_INITIALISED[name])


def jiffies(seconds: float) -> int:
    """The jiffies count at a time of the clock (whole microseconds first: 9.7 s is 2425 jiffies)."""
    return round(seconds * 1_000_000) * HZ // 1_000_000


def jiffies_to_usecs(j: int) -> int:
    return j * (1_000_000 // HZ)


def jiffies_to_msecs(j: int) -> int:
    return (j & U32_MAX) * (1000 // HZ)


def tcp_get_info_struct(sk, now: float) -> TcpDiagInfo:
    """net/ipv4/tcp.c tcp_get_info() of a full socket at time `now`."""
    info = TcpDiagInfo(tcpi_state=int(sk.state))
    info.tcpi_pacing_rate, info.tcpi_max_pacing_rate = sk.sk_pacing_rate, sk.sk_max_pacing_rate
    info.tcpi_reordering = sk.reordering
    info.tcpi_snd_cwnd = sk.snd_cwnd
    if sk.state == TCP_LISTEN:  # aliased: children ready for accept() and the backlog limit
        info.tcpi_unacked, info.tcpi_sacked = len(sk.accept_queue), sk.sk_max_ack_backlog
        return info
    rx_opt, ack = sk.rx_opt, sk.icsk_ack
    info.tcpi_ca_state, info.tcpi_retransmits = sk.icsk_ca_state, sk.retransmits
    info.tcpi_probes, info.tcpi_backoff = sk.probes_out, sk.backoff
    ecn = _tcp_field(sk, "ecn_flags")
    info.tcpi_options = (TCPI_OPT_TIMESTAMPS * rx_opt.tstamp_ok | TCPI_OPT_SACK * rx_opt.sack_ok
                         | TCPI_OPT_WSCALE * rx_opt.wscale_ok | TCPI_OPT_ECN * bool(ecn & TCP_ECN_OK)
                         | TCPI_OPT_ECN_SEEN * bool(ecn & TCP_ECN_SEEN))
    if rx_opt.wscale_ok:
        info.tcpi_snd_wscale, info.tcpi_rcv_wscale = rx_opt.snd_wscale, rx_opt.rcv_wscale
    info.tcpi_rto, info.tcpi_ato = jiffies_to_usecs(jiffies(sk.rto)), jiffies_to_usecs(jiffies(ack.ato))
    info.tcpi_snd_mss, info.tcpi_rcv_mss = sk.mss_cache, ack.rcv_mss
    info.tcpi_unacked, info.tcpi_sacked = sk.packets_out, sk.sacked_out
    info.tcpi_lost, info.tcpi_retrans = sk.lost_out, sk.retrans_out
    tcp_jiffies32 = jiffies(now)
    info.tcpi_last_data_sent = jiffies_to_msecs(tcp_jiffies32 - jiffies(sk.lsndtime))
    info.tcpi_last_data_recv = jiffies_to_msecs(tcp_jiffies32 - jiffies(ack.lrcvtime))
    info.tcpi_last_ack_recv = jiffies_to_msecs(tcp_jiffies32 - jiffies(sk.rcv_tstamp))
    info.tcpi_pmtu, info.tcpi_rcv_ssthresh = sk.icsk_pmtu_cookie, sk.rcv_ssthresh
    info.tcpi_rtt, info.tcpi_rttvar = sk.srtt_us >> 3, sk.mdev_us >> 2
    info.tcpi_snd_ssthresh, info.tcpi_advmss = sk.snd_ssthresh, sk.advmss
    info.tcpi_rcv_rtt, info.tcpi_rcv_space = sk.rcv_rtt_est.rtt_us >> 3, sk.rcvq_space.space
    info.tcpi_total_retrans = sk.total_retrans
    info.tcpi_bytes_acked, info.tcpi_bytes_received = sk.bytes_acked, sk.bytes_received
    notsent = (sk.write_seq - sk.snd_nxt) & U32_MAX
    info.tcpi_notsent_bytes = notsent if notsent < 0x80000000 else 0  # max_t(int, 0, ...)
    info.tcpi_segs_out, info.tcpi_segs_in = sk.segs_out, sk.segs_in
    info.tcpi_data_segs_in, info.tcpi_data_segs_out = sk.data_segs_in, sk.data_segs_out
    info.tcpi_min_rtt = sk.rtt_min
    info.tcpi_delivery_rate_app_limited = 1 if sk.rate_app_limited else 0
    info.tcpi_delivery_rate = tcp_compute_delivery_rate(sk)
    info.tcpi_delivered, info.tcpi_delivered_ce = sk.delivered, _tcp_field(sk, "delivered_ce")
    info.tcpi_bytes_sent, info.tcpi_bytes_retrans = sk.bytes_sent, sk.bytes_retrans
    info.tcpi_dsack_dups, info.tcpi_reord_seen = sk.dsack_dups, sk.reord_seen
    info.tcpi_rcv_ooopack, info.tcpi_snd_wnd = _tcp_field(sk, "rcv_ooopack"), sk.snd_wnd
    return info


def tcp_compute_delivery_rate(sk) -> int:
    """Bytes per second over the last rate sample: rate_delivered segments of mss_cache in rate_interval_us."""
    rate, interval = _tcp_field(sk, "rate_delivered"), _tcp_field(sk, "rate_interval_us")
    return rate * sk.mss_cache * 1_000_000 // interval if rate and interval else 0


def sk_get_meminfo(sk) -> SkMeminfo:
    return SkMeminfo(sk.rmem_alloc, sk.sk_rcvbuf, _tcp_field(sk, "sk_wmem_alloc"), sk.sk_sndbuf, sk.sk_forward_alloc,
                     sk.sk_wmem_queued, _tcp_field(sk, "sk_omem_alloc"), _tcp_field(sk, "sk_backlog_len"),
                     sk.sk_drops)


def tcp_diag_queues(sk) -> tuple[int, int]:
    """tcp_diag_get_info()'s idiag_rqueue and idiag_wqueue."""
    if sk.state == TCP_LISTEN:
        return len(sk.accept_queue), sk.sk_max_ack_backlog
    unread = (sk.rcv_nxt - sk.copied_seq) & U32_MAX
    return (unread if unread < 0x80000000 else 0), (sk.write_seq - sk.snd_una) & U32_MAX


def _family_addr(addr: int | bytes, family: int) -> int | bytes:
    """An address as sk_family reports it: an AF_INET6 socket's IPv4 one v4-mapped."""
    return v4mapped(addr) if family != AF_INET and addr.__class__ is int else addr


def _diag_msg(state: int, family: int, saddr, sport: int, daddr, dport: int, v6only: bool) -> InetDiagMsg:
    return InetDiagMsg(state, _family_addr(saddr, family), sport, _family_addr(daddr, family), dport,
                       family=family, v6only=v6only)


def inet_sk_diag_fill(sk, ext: int, now: float) -> InetDiagMsg:
    msg = _diag_msg(int(sk.state), sk.family, sk.rcv_saddr, sk.sport, sk.daddr, sk.dport, sk.ipv6only)
    msg.rqueue, msg.wqueue = tcp_diag_queues(sk)
    if ext & (1 << (INET_DIAG_SKMEMINFO - 1)):
        msg.skmeminfo = sk_get_meminfo(sk)
    if ext & (1 << (INET_DIAG_INFO - 1)):
        msg.info = tcp_get_info_struct(sk, now)
    if ext & (1 << (INET_DIAG_CONG - 1)) and sk.icsk_ca_ops is not None:
        msg.cong = sk.icsk_ca_ops.name
    return msg


def inet_diag_dump_icsk(net, states: int, ext: int, family: int = AF_INET) -> list[InetDiagMsg]:
    """The TCP sockets of sk_family `family` whose state is in the bitmask `states` (1 << TCP_x)."""
    hashinfo, now = net.tcp_hashinfo, net.clock.now
    out = []
    if states & (1 << TCP_LISTEN):
        out += [inet_sk_diag_fill(sk, ext, now) for listeners in hashinfo.listening.values() for sk in listeners
                if sk.family == family]
    for sk in hashinfo.ehash.values():
        state = TCP_SYN_RECV if sk.state == TCP_NEW_SYN_RECV else (
            sk.tw_substate if sk.state == TCP_TIME_WAIT else sk.state)
        if not states & (1 << state):
            continue
        if sk.state == TCP_NEW_SYN_RECV:  # inet_req_diag_fill()
            listener = sk.listener
            if listener.family == family:
                out.append(_diag_msg(TCP_SYN_RECV, family, sk.ir_loc_addr, sk.ir_num, sk.ir_rmt_addr,
                                     sk.ir_rmt_port, False))
        elif sk.family != family:
            continue
        elif sk.state == TCP_TIME_WAIT:  # inet_twsk_diag_fill()
            out.append(_diag_msg(int(state), family, sk.rcv_saddr, sk.sport, sk.daddr, sk.dport, False))
        else:
            out.append(inet_sk_diag_fill(sk, ext, now))
    return out
