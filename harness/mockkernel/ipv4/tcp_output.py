"""TCP output (net/ipv4/tcp_output.c): segments, options, windows, the send queue.

__tcp_transmit_skb() builds each segment on bytes: the options in
tcp_options_write()'s order as tcp_syn_options(), tcp_synack_options() and
tcp_established_options() choose them, the window from tcp_select_window()
(never scaled on a SYN), and the IP header as __ip_queue_xmit() makes it for a
connected socket: DF (IP_PMTUDISC_WANT), the socket's TOS, the default TTL and
the socket's own IP ID counter (inet_id, random at connect, one per segment).
A SYN-ACK leaves as ip_build_and_send_pkt() sends it: DF and IP ID 0. The
network layer is the socket's icsk_af_ops (ipv4_specific here, tcp_ipv4.py;
over IPv6 ipv6/tcp_ipv6.py's): its queue_xmit() puts the IP header on and
sends, its net_header_len is what the MSS leaves for the IP header (20, 40),
its rebuild_header() routes a socket that lost its route; a request's
send_synack() routes and sends its SYN-ACK.

tcp_write_xmit() sends what the congestion window (tcp_cwnd_test()), the
peer's window (tcp_snd_wnd_test()) and Nagle (tcp_nagle_test(): Minshall's
variant, a small segment waits only while an earlier small one is unacked;
TCP_NODELAY and TCP_CORK as nonagle bits) allow, then arms the tail loss
probe (tcp_schedule_loss_probe(): 2 * srtt + 2 ms, + the minimum RTO with one
segment out, 1 s without an RTT sample) or the RTO. tcp_sendmsg_locked()
queues the application's bytes as TCP does with GSO always on (sk_setup_caps()
turns it on for every TCP socket): an skb grows to the size goal (as many MSS
as fit half the peer's largest window, at most 64 KiB) and the send buffer is
checked only when a new skb is needed (sk_stream_memory_free()), so a write can
overshoot SO_SNDBUF by one skb, as on Linux. Each skb is charged
SKB_TRUESIZE + its bytes to sk_wmem_queued; sk_sndbuf grows with cwnd
(tcp_sndbuf_expand(): 2 * max(cwnd, 10) * per_mss) unless SO_SNDBUF locked
it. tcp_write_xmit() hands the IP layer one GSO skb per burst (gso_size the
MSS, at most tcp_tso_segs() segments: tcp_tso_autosize() from the pacing
rate and the minimum RTT, at least tcp_min_tso_segs, within the device's
gso_max_segs), so netfilter and the qdisc see it once; the device layer
segments it when the port has no TSO (core/gso.py). The retransmission
queue keeps it MSS by MSS (PSH and FIN on the last).

Times are seconds on the namespace clock; timer delays are rounded up to
jiffies (HZ 250) where the kernel converts microseconds with
usecs_to_jiffies(). TCP timestamps tick in milliseconds (TCP_TS_HZ 1000).
Left out: TSO deferral (tcp_tso_should_defer()), pacing, TSQ
and autocorking (a transmitted skb is freed at once here, so both find
nothing in flight below the socket), MTU probing, ECN, TCP Fast Open, MD5/AO.
"""
from __future__ import annotations

import errno
from math import ceil

from harness.journey import Hop, Stage
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.core.snmp import (SNMP4_NET_LIST, SNMP4_TCP_LIST, TCP_MIB_OUTRSTS, TCP_MIB_OUTSEGS)
from harness.mockkernel.core.sysctl import (INT_MAX, SOCK_MIN_RCVBUF, UINT_MAX, CtlTable, proc_dointvec,
                                           proc_dointvec_minmax, proc_dou8vec_minmax, proc_douintvec_minmax)
from harness.mockkernel.ipv4 import ip_output
from harness.mockkernel.ipv4.tcp_sock import (ICSK_ACK_PUSHED, ICSK_ACK_SCHED, ICSK_ACK_TIMER, ICSK_TIME_DACK, ICSK_TIME_LOSS_PROBE,
                                         ICSK_TIME_PROBE0, ICSK_TIME_REO_TIMEOUT, ICSK_TIME_RETRANS,
                                         TCP_CLOSE, TCPCB_EVER_RETRANS, TCPCB_LOST,
                                         TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS, TcpSkb, after, before, between,
                                         sock_addr_str)
from harness.mockkernel.ipv4.tcp_cong import (CA_EVENT_CWND_RESTART, CA_EVENT_TX_START, TCP_CA_CWR, TCP_CA_Open,
                                              TCP_CA_Recovery, tcp_ca_event, tcp_is_cwnd_limited)
from harness.mockkernel.tracer import Lazy
from harness.mockkernel.wire import tcp as wire_tcp
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_TCP, build_header
from harness.mockkernel.wire.tcp import (MAX_TCP_OPTION_SPACE, TCP_HLEN, TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH,
                                         TCPHDR_RST, TCPHDR_SYN, TCPOLEN_SACK_BASE_ALIGNED, TCPOLEN_SACK_PERBLOCK,
                                         TCPOLEN_TSTAMP_ALIGNED, OutOptions)

HZ = 250
TCP_INIT_CWND = 10
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
MAX_TCP_WINDOW = 32767
TCP_MAX_WSCALE = 14
U16_MAX = 0xFFFF
TCP_TIMEOUT_INIT = 1.0  # the RTO before an RTT sample: RFC 6298's 1 s
TCP_TIMEOUT_MIN_US = 2000
TCP_DELACK_MAX, TCP_DELACK_MIN, TCP_ATO_MIN = 0.2, 0.04, 0.04
TCP_RESOURCE_PROBE_INTERVAL = 0.5
# the header room and struct sizes tcp_sndbuf_expand() and SKB_TRUESIZE() count: MAX_TCP_HEADER is
# L1_CACHE_ALIGN(128 + MAX_HEADER), 256 on this build (bbr's sndbuf came out 3 x 10 x (2048 + 256))
MAX_TCP_HEADER = 256
GSO_LEGACY_MAX_SIZE = 65536  # dev->gso_ipv4_max_size of a veth or lo: what sk_setup_caps() starts from
SK_PACING_SHIFT = 10  # sk->sk_pacing_shift (sk_pacing_shift_update() leaves it for TCP): ~1 ms of bytes
SKB_SHINFO_SIZE, SK_BUFF_SIZE = 320, 256
# tp->nonagle bits (include/net/tcp.h)
TCP_NAGLE_OFF, TCP_NAGLE_CORK, TCP_NAGLE_PUSH = 1, 2, 4
# sk->sk_userlocks: SO_SNDBUF / SO_RCVBUF set by the application
SOCK_SNDBUF_LOCK, SOCK_RCVBUF_LOCK = 1, 2

TCP_MIB_RETRANSSEGS = SNMP4_TCP_LIST.index("RetransSegs")
LINUX_MIB_TCPORIGDATASENT = SNMP4_NET_LIST.index("TCPOrigDataSent")
LINUX_MIB_TCPACKCOMPRESSED = SNMP4_NET_LIST.index("TCPAckCompressed")
LINUX_MIB_TCPLOSSPROBES = SNMP4_NET_LIST.index("TCPLossProbes")
LINUX_MIB_TCPWINPROBE = SNMP4_NET_LIST.index("TCPWinProbe")
LINUX_MIB_TCPKEEPALIVE = SNMP4_NET_LIST.index("TCPKeepAlive")
LINUX_MIB_TCPSYNRETRANS = SNMP4_NET_LIST.index("TCPSynRetrans")
LINUX_MIB_TCPWANTZEROWINDOWADV = SNMP4_NET_LIST.index("TCPWantZeroWindowAdv")
LINUX_MIB_TCPTOZEROWINDOWADV = SNMP4_NET_LIST.index("TCPToZeroWindowAdv")
LINUX_MIB_TCPFROMZEROWINDOWADV = SNMP4_NET_LIST.index("TCPFromZeroWindowAdv")

_XMIT_HOP = Hop(Stage.SOCKET, "tcp_transmit_skb", "SEND")


def _int_min(default: int, low: int, high: int = INT_MAX) -> CtlTable:
    return CtlTable(default, proc_dointvec_minmax, low, high)


# net/ipv4/sysctl_net_ipv4.c: the entries the send side reads, with the defaults
# a new namespace shows on the project's 6.18 machines
TCP_OUTPUT_SYSCTLS = {
    "net.ipv4.tcp_wmem": CtlTable((4096, 16384, 4194304), proc_dointvec_minmax, 1),
    "net.ipv4.tcp_syn_retries": _int_min(6, 1, 127),
    "net.ipv4.tcp_synack_retries": CtlTable(5, proc_dointvec),
    "net.ipv4.tcp_syn_linear_timeouts": _int_min(4, 0, 10),
    "net.ipv4.tcp_retries1": _int_min(3, 0, 255),
    "net.ipv4.tcp_retries2": CtlTable(15, proc_dointvec),
    "net.ipv4.tcp_orphan_retries": CtlTable(0, proc_dointvec),
    "net.ipv4.tcp_early_retrans": _int_min(3, 0, 4),
    "net.ipv4.tcp_recovery": CtlTable(1, proc_dointvec),
    "net.ipv4.tcp_reordering": CtlTable(3, proc_dointvec),
    "net.ipv4.tcp_max_reordering": CtlTable(300, proc_dointvec),
    "net.ipv4.tcp_slow_start_after_idle": _int_min(1, 0, 1),
    "net.ipv4.tcp_autocorking": _int_min(1, 0, 1),
    "net.ipv4.tcp_notsent_lowat": CtlTable(UINT_MAX, proc_douintvec_minmax),
    "net.ipv4.tcp_base_mss": CtlTable(1024, proc_dointvec),
    "net.ipv4.tcp_min_snd_mss": _int_min(48, TCP_MIN_MSS - 40, 65535 - 40),
    "net.ipv4.tcp_mtu_probing": _int_min(0, 0, 2),
    "net.ipv4.tcp_rto_min_us": _int_min(200000, 1),
    "net.ipv4.tcp_rto_max_ms": _int_min(120000, 1000, 120000),
    "net.ipv4.tcp_thin_linear_timeouts": _int_min(0, 0, 1),
    "net.ipv4.tcp_keepalive_time": CtlTable(7200, proc_dointvec),
    "net.ipv4.tcp_keepalive_intvl": _int_min(75, 1),
    "net.ipv4.tcp_keepalive_probes": _int_min(9, 1, 255),
    "net.ipv4.tcp_frto": CtlTable(2, proc_dointvec),
    "net.ipv4.tcp_tso_win_divisor": _int_min(3, 1, 255),
    "net.ipv4.tcp_min_tso_segs": CtlTable(2, proc_dou8vec_minmax, 1),
    "net.ipv4.tcp_tso_rtt_log": CtlTable(9, proc_dou8vec_minmax),
    "net.ipv4.tcp_limit_output_bytes": CtlTable(4194304, proc_dointvec),
    "net.ipv4.tcp_pacing_ss_ratio": _int_min(200, 0, 1000),
    "net.ipv4.tcp_pacing_ca_ratio": _int_min(120, 0, 1000),
    "net.ipv4.tcp_workaround_signed_windows": CtlTable(0, proc_dointvec),
    "net.ipv4.tcp_shrink_window": _int_min(0, 0, 1),
    # what the SYN offers and the window is made from
    "net.ipv4.tcp_timestamps": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_window_scaling": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_sack": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_rmem": CtlTable((4096, 131072, 33554432), proc_dointvec_minmax, 1),
}


def usecs_to_jiffies(usecs: int) -> float:
    """The delay in seconds, rounded up to a jiffy as the kernel's timers hold it."""
    return ceil(usecs * HZ / 1_000_000) / HZ


def tcp_rto_min(sk) -> float:
    return usecs_to_jiffies(sk.net.sysctl.values["net.ipv4.tcp_rto_min_us"])


def tcp_rto_max(sk) -> float:
    return sk.net.sysctl.values["net.ipv4.tcp_rto_max_ms"] / 1000


def tcp_time_stamp_ts(sk) -> int:
    """TSval of a segment sent now: the millisecond clock plus the socket's offset."""
    return (int(sk.net.clock.now * 1000) + sk.tsoffset) & 0xFFFFFFFF


# --- timers: arming them (include/net/inet_connection_sock.h); the handlers are tcp_timer.py's

def inet_csk_reset_xmit_timer(sk, what: int, when: float, max_when: float) -> None:
    when = min(when, max_when)
    now = sk.net.clock.now
    if what == ICSK_TIME_DACK:
        sk.icsk_ack.pending |= ICSK_ACK_TIMER
        sk.icsk_ack.timeout = now + when
        sk.icsk_delack_timer.mod_timer(sk.icsk_ack.timeout)
    else:
        sk.icsk_pending = what
        sk.icsk_timeout = now + when
        sk.icsk_retransmit_timer.mod_timer(sk.icsk_timeout)


def inet_csk_clear_xmit_timer(sk, what: int) -> None:
    if what == ICSK_TIME_DACK:
        sk.icsk_ack.pending = 0
        sk.icsk_ack.retry = 0
        sk.icsk_delack_timer.del_timer()
    else:
        sk.icsk_pending = 0
        sk.icsk_retransmit_timer.del_timer()


def tcp_rto_delta_us(sk) -> int:
    """How far in the future the head's RTO is."""
    head = sk.rtx_queue[0]
    return int((sk.rto - (sk.net.clock.now - head.skb_mstamp)) * 1_000_000)


def tcp_rearm_rto(sk) -> None:
    """The RTO from now, or from the head's send time when a loss probe or
    RACK's reordering timer stood in for it."""
    if not sk.packets_out:
        inet_csk_clear_xmit_timer(sk, ICSK_TIME_RETRANS)
        return
    rto = sk.rto
    if sk.icsk_pending in (ICSK_TIME_REO_TIMEOUT, ICSK_TIME_LOSS_PROBE):
        rto = usecs_to_jiffies(max(tcp_rto_delta_us(sk), 1))
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, rto, tcp_rto_max(sk))


def tcp_probe0_base(sk) -> float:
    return max(sk.rto, tcp_rto_min(sk))


def tcp_probe0_when(sk, max_when: float) -> float:
    """The zero-window probe interval: the base doubled per backoff."""
    backoff = min(9, sk.backoff)  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN) + 1
    return min(tcp_probe0_base(sk) * (1 << backoff), max_when)


def tcp_check_probe_timer(sk) -> None:
    if not sk.packets_out and not sk.icsk_pending:
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, tcp_probe0_base(sk), tcp_rto_max(sk))


# --- MSS and windows

def tcp_win_from_space(sk, space: int) -> int:
    """The window `space` bytes of receive buffer allow (tp->scaling_ratio / 256)."""
    return (space * sk.scaling_ratio) >> 8 if space > 0 else 0


def tcp_set_window_clamp(sk, val: int) -> None:
    """net/ipv4/tcp.c tcp_set_window_clamp() for a nonzero clamp (at least half
    SOCK_MIN_RCVBUF): a smaller one pulls rcv_ssthresh down to it
    (__tcp_adjust_rcv_ssthresh(), no SO_RESERVE_MEM here), a larger one lets
    rcv_ssthresh up to the window last offered."""
    old_window_clamp = sk.window_clamp
    new_window_clamp = max(SOCK_MIN_RCVBUF // 2, val)
    if new_window_clamp == old_window_clamp:
        return
    sk.window_clamp = new_window_clamp
    if new_window_clamp < old_window_clamp:
        sk.rcv_ssthresh = min(sk.rcv_ssthresh, new_window_clamp)
    else:
        sk.rcv_ssthresh = max(min(sk.rcv_wnd, new_window_clamp), sk.rcv_ssthresh)


def tcp_full_space(sk) -> int:
    return tcp_win_from_space(sk, sk.sk_rcvbuf)


def tcp_space(sk) -> int:
    return tcp_win_from_space(sk, sk.sk_rcvbuf - sk.rmem_alloc)


def dst_metric_advmss(dst) -> int:
    """The route's advmss metric, else ipv4_default_advmss(): the MTU less the
    IP and TCP headers, at least 256 (an IPv6 socket's route has its own
    default, ipv6/tcp_ipv6.py)."""
    return dst.advmss or max(min(dst.dst_mtu(), 0xFFFF) - 40, 256)


def tcp_mss_clamp(sk, mss: int) -> int:
    user_mss = sk.rx_opt.user_mss
    return user_mss if user_mss and user_mss < mss else mss


def tcp_mtu_to_mss(sk, pmtu: int) -> int:
    """__tcp_mtu_to_mss() less the options every segment carries."""
    mss = pmtu - sk.icsk_af_ops.net_header_len - TCP_HLEN
    clamp = sk.rx_opt.mss_clamp
    if clamp and mss > clamp:
        mss = clamp
    mss = max(mss, sk.net.sysctl.values["net.ipv4.tcp_min_snd_mss"])
    return mss - (sk.tcp_header_len - TCP_HLEN)


def tcp_bound_to_half_wnd(sk, pktsize: int) -> int:
    """No segment larger than half the peer's largest window (all of it while
    that is at most 536 bytes)."""
    cutoff = sk.max_window >> 1 if sk.max_window > TCP_MSS_DEFAULT else sk.max_window
    if cutoff and pktsize > cutoff:
        return max(cutoff, 68 - sk.tcp_header_len)
    return pktsize


def tcp_sync_mss(sk, pmtu: int) -> int:
    mss = tcp_bound_to_half_wnd(sk, tcp_mtu_to_mss(sk, pmtu))
    sk.icsk_pmtu_cookie = pmtu
    sk.mss_cache = mss
    return mss


def tcp_current_mss(sk) -> int:
    """The MSS of the next segment: re-synced when the route's MTU moved, less
    the SACK blocks this segment carries beyond the usual options."""
    mss = sk.mss_cache
    if sk.dst is not None:
        mtu = sk.dst.dst_mtu()
        if mtu != sk.icsk_pmtu_cookie:
            mss = tcp_sync_mss(sk, mtu)
    header_len = _established_options_size(sk) + TCP_HLEN
    if header_len != sk.tcp_header_len:
        mss -= header_len - sk.tcp_header_len
    return mss


def tcp_initialize_rcv_mss(sk) -> None:
    """icsk_ack.rcv_mss before any data: a guess no larger than 536 bytes."""
    hint = min(sk.advmss, sk.mss_cache, sk.rcv_wnd // 2, TCP_MSS_DEFAULT)
    sk.icsk_ack.rcv_mss = max(hint, TCP_MIN_MSS)


def tcp_select_initial_window(net, space: int, mss: int, window_clamp: int, wscale_ok: bool,
                              init_rcv_wnd: int = 0) -> tuple[int, int, int]:
    """(rcv_wnd, window_clamp, rcv_wscale): the window of the SYN or SYN-ACK, a
    multiple of the MSS, and the scale that lets the largest receive buffer
    (tcp_rmem[2], rmem_max) be advertised."""
    space = max(space, 0)
    if window_clamp == 0:
        window_clamp = U16_MAX << TCP_MAX_WSCALE
    space = min(window_clamp, space)
    if space > mss:
        space -= space % mss
    values = net.sysctl.values
    rcv_wnd = min(space, MAX_TCP_WINDOW) if values["net.ipv4.tcp_workaround_signed_windows"] else space
    if init_rcv_wnd:
        rcv_wnd = min(rcv_wnd, init_rcv_wnd * mss)
    rcv_wscale = 0
    if wscale_ok:
        space = max(space, values["net.ipv4.tcp_rmem"][2], values["net.core.rmem_max"])
        space = min(space, window_clamp)
        rcv_wscale = min(max(space.bit_length() - 1 - 15, 0), TCP_MAX_WSCALE)
    return rcv_wnd, min(U16_MAX << rcv_wscale, window_clamp), rcv_wscale


def __tcp_select_window(sk) -> int:
    """The window the receive buffer allows now: never below what was offered
    (tcp_select_window() keeps that), zero when free space fell under 1/16 of
    the buffer or one MSS, rounded up to the scale's unit when scaling."""
    mss = sk.icsk_ack.rcv_mss
    free_space = tcp_space(sk)
    allowed_space = tcp_full_space(sk)
    full_space = min(sk.window_clamp, allowed_space)
    if mss > full_space:
        mss = full_space
        if mss <= 0:
            return 0
    wscale = sk.rx_opt.rcv_wscale
    if free_space < full_space >> 1:
        sk.icsk_ack.quick = 0
        free_space &= ~((1 << wscale) - 1)
        if free_space < allowed_space >> 4 or free_space < mss:
            return 0
    free_space = min(free_space, sk.rcv_ssthresh)
    if wscale:
        unit = 1 << wscale
        return (free_space + unit - 1) & ~(unit - 1)
    window = sk.rcv_wnd
    if window <= free_space - mss or window > free_space:
        window = free_space - free_space % mss
    elif mss == full_space and free_space > window + (full_space >> 1):
        window = free_space
    return window


def tcp_receive_window(sk) -> int:
    """What is left of the window last advertised (a s32 of u32 arithmetic, at least 0)."""
    win = (sk.rcv_wup + sk.rcv_wnd - sk.rcv_nxt) & 0xFFFFFFFF
    return 0 if win >= 0x80000000 else win


def tcp_select_window(sk) -> int:
    """The window field of a segment sent now (scaled), updating rcv_wnd and rcv_wup."""
    net = sk.net
    old_win = sk.rcv_wnd
    cur_win = tcp_receive_window(sk)
    new_win = __tcp_select_window(sk)
    wscale = sk.rx_opt.rcv_wscale
    if new_win < cur_win and (not net.sysctl.values["net.ipv4.tcp_shrink_window"] or not wscale):
        if new_win == 0:
            net.mib.net_statistics[LINUX_MIB_TCPWANTZEROWINDOWADV] += 1
        unit = 1 << wscale
        new_win = (cur_win + unit - 1) & ~(unit - 1)  # never shrink the offered window
    sk.rcv_wnd = new_win
    sk.rcv_wup = sk.rcv_nxt
    if not wscale and net.sysctl.values["net.ipv4.tcp_workaround_signed_windows"]:
        new_win = min(new_win, MAX_TCP_WINDOW)
    else:
        new_win = min(new_win, U16_MAX << wscale)
    new_win >>= wscale
    if new_win == 0:
        if old_win:
            net.mib.net_statistics[LINUX_MIB_TCPTOZEROWINDOWADV] += 1
    elif old_win == 0:
        net.mib.net_statistics[LINUX_MIB_TCPFROMZEROWINDOWADV] += 1
    return new_win


# --- options

def _established_options_size(sk) -> int:
    size = TCPOLEN_TSTAMP_ALIGNED if sk.rx_opt.tstamp_ok else 0
    eff_sacks = sk.rx_opt.num_sacks + sk.rx_opt.dsack
    if eff_sacks:
        remaining = MAX_TCP_OPTION_SPACE - size
        if remaining >= TCPOLEN_SACK_BASE_ALIGNED + TCPOLEN_SACK_PERBLOCK:
            blocks = min(eff_sacks, (remaining - TCPOLEN_SACK_BASE_ALIGNED) // TCPOLEN_SACK_PERBLOCK)
            size += TCPOLEN_SACK_BASE_ALIGNED + blocks * TCPOLEN_SACK_PERBLOCK
    return size


def tcp_established_options(sk, tsval: int) -> OutOptions:
    """Timestamps when negotiated; the D-SACK block first, then the SACK
    blocks, as many as the 40 bytes leave room for."""
    rx_opt = sk.rx_opt
    opts = OutOptions()
    size = 0
    if rx_opt.tstamp_ok:
        opts.ts = (tsval, rx_opt.ts_recent)
        size = TCPOLEN_TSTAMP_ALIGNED
    eff_sacks = rx_opt.num_sacks + rx_opt.dsack
    if eff_sacks:
        remaining = MAX_TCP_OPTION_SPACE - size
        if remaining >= TCPOLEN_SACK_BASE_ALIGNED + TCPOLEN_SACK_PERBLOCK:
            blocks = min(eff_sacks, (remaining - TCPOLEN_SACK_BASE_ALIGNED) // TCPOLEN_SACK_PERBLOCK)
            sacks = (list(sk.duplicate_sack[:1]) if rx_opt.dsack else []) + list(sk.selective_acks[:rx_opt.num_sacks])
            opts.sack_blocks = tuple((start & 0xFFFFFFFF, end & 0xFFFFFFFF) for start, end in sacks[:blocks])
    return opts


def tcp_syn_options(sk, tsval: int) -> OutOptions:
    """MSS (advmss), then timestamps, window scale and SACK-permitted as the
    tcp_timestamps, tcp_window_scaling and tcp_sack sysctls allow."""
    values = sk.net.sysctl.values
    opts = OutOptions(mss=sk.advmss)
    if values["net.ipv4.tcp_timestamps"]:
        opts.ts = (tsval, sk.rx_opt.ts_recent)
    if values["net.ipv4.tcp_window_scaling"]:
        opts.ws = sk.rx_opt.rcv_wscale
    opts.sack_ok = bool(values["net.ipv4.tcp_sack"])
    return opts


def tcp_synack_options(req, mss: int, tsval: int) -> OutOptions:
    """MSS always; window scale, timestamps and SACK-permitted as the SYN offered them."""
    return OutOptions(mss=mss, ws=req.rcv_wscale if req.wscale_ok else None, sack_ok=req.sack_ok,
                      ts=(tsval, req.ts_recent) if req.tstamp_ok else None)


# --- sending one segment

def _segment_summary(saddr: int | bytes, daddr: int | bytes, sport: int, dport: int, flags: int, seq: int,
                     ack: int, length: int, why: str) -> str:
    names = "".join(name for bit, name in ((TCPHDR_SYN, "S"), (TCPHDR_FIN, "F"), (TCPHDR_RST, "R"),
                                             (TCPHDR_PSH, "P"), (TCPHDR_ACK, ".")) if flags & bit)
    return (f"{why}: {sock_addr_str(saddr)}:{sport} > {sock_addr_str(daddr)}:{dport} [{names}] seq {seq} "
            f"ack {ack} len {length}")


def __sk_dst_check(sk):
    """The socket's route, looked up again (icsk_af_ops->rebuild_header()) if it has none."""
    if sk.dst is None:
        rt = sk.icsk_af_ops.rebuild_header(sk)
        if isinstance(rt, int):
            return rt
        sk.dst = rt
    return sk.dst


def tcp_skb_xmit_start(net, packet: bytes, header_len: int, rt, summary: Lazy, sk=None):
    """The skb of a TCP packet the socket layer made (`header_len` bytes of IP
    header on the segment), routed over `rt`, its journey started at the send."""
    skb = alloc_skb(packet)
    skb.net, skb.dst, skb.dev, skb.sk = net, rt, rt.dev, sk
    skb.network_header, skb.transport_header = skb.data, skb.data + header_len
    net.tracer.start(skb, summary)
    journey = skb.journey
    if journey is not None:
        journey.hops.append(_XMIT_HOP)
    return skb


def ip_queue_xmit(sk, segment: bytearray, why: str, summary: Lazy, gso_size: int = 0, gso_segs: int = 1) -> int:
    """__ip_queue_xmit() (ipv4_specific.queue_xmit): the IP header of a connected
    socket, then ip_local_out(). A GSO skb takes gso_segs IP IDs
    (ip_select_ident_segs()), one per segment skb_gso_segment() cuts.
    EHOSTUNREACH when there is no route (OutNoRoutes)."""
    net = sk.net
    rt = __sk_dst_check(sk)
    if isinstance(rt, int):
        net.mib.ip_statistics[ip_output.IPSTATS_MIB_OUTNOROUTES] += 1
        return errno.EHOSTUNREACH
    ident = sk.inet_id & 0xFFFF
    sk.inet_id = ident + gso_segs
    header = build_header(sk.saddr, sk.daddr, IPPROTO_TCP, len(segment),
                          ttl=net.sysctl.values["net.ipv4.ip_default_ttl"], tos=sk.tos, ident=ident,
                          frag_off=IP_DF)
    skb = tcp_skb_xmit_start(net, header + segment, len(header), rt, summary, sk)
    skb.gso_size, skb.gso_segs = gso_size, gso_segs if gso_size else 0
    ip_output.ip_local_out(skb)
    return 0


def tcp_transmit_skb(sk, skb: TcpSkb, rcv_nxt: int | None = None, why: str = "tcp_transmit_skb",
                     length: int | None = None, flags: int | None = None, mss_now: int = 0) -> int:
    """__tcp_transmit_skb() for [skb.seq, skb.seq + length) of `skb` (all of
    it by default) with `flags` (its own by default): header, options, window,
    checksum, then ip_queue_xmit(). Given `mss_now`, more than an MSS goes as a
    GSO skb, counted as its segments (tcp_skb_pcount()) in OutSegs, segs_out
    and data_segs_out. Returns 0 or the errno that kept it back."""
    net = sk.net
    now = net.clock.now
    if length is None:
        length = len(skb.data)
    if flags is None:
        flags = skb.tcp_flags
    if rcv_nxt is None:
        rcv_nxt = sk.rcv_nxt
    skb.skb_mstamp = now
    tsval = tcp_time_stamp_ts(sk)
    rx_opt = sk.rx_opt
    if flags & TCPHDR_SYN:
        options = wire_tcp.write_options(tcp_syn_options(sk, tsval))
        window = min(sk.rcv_wnd, U16_MAX)
    else:
        window = tcp_select_window(sk)
        if rx_opt.num_sacks or rx_opt.dsack:
            options = wire_tcp.write_options(tcp_established_options(sk, tsval))
            rx_opt.dsack = False
        else:  # what nearly every segment carries: the timestamps alone, or nothing
            options = wire_tcp.timestamp_options(tsval, rx_opt.ts_recent) if rx_opt.tstamp_ok else b""
    payload = skb.data if length == len(skb.data) else skb.data[:length]
    ack_seq = rcv_nxt if flags & TCPHDR_ACK else 0
    segment = wire_tcp.build_segment(sk.saddr, sk.daddr, sk.sport, sk.dport, skb.seq, ack_seq, flags, window,
                                     options, payload)
    if flags & TCPHDR_ACK:
        tcp_event_ack_sent(sk, rcv_nxt)
    gso_size = mss_now if mss_now and length > mss_now else 0
    pcount = -(-length // gso_size) if gso_size else 1
    if length:
        tcp_event_data_sent(sk)
        sk.data_segs_out += pcount
        sk.bytes_sent += length
    end_seq = skb.seq + length + (1 if flags & (TCPHDR_SYN | TCPHDR_FIN) else 0)
    if after(end_seq, sk.snd_nxt) or skb.seq == end_seq:
        net.mib.tcp_statistics[TCP_MIB_OUTSEGS] += pcount
    sk.segs_out += pcount
    return sk.icsk_af_ops.queue_xmit(sk, segment, why, Lazy(_segment_summary, sk.saddr, sk.daddr, sk.sport,
                                                            sk.dport, flags, skb.seq, ack_seq, length, why),
                                     gso_size, pcount)


def tcp_event_ack_sent(sk, rcv_nxt: int) -> None:
    """An ACK left: quickack credit used, the delayed ACK no longer due, the
    duplicate ACKs held back (compressed SACKs, tcp_input.py) said by this one."""
    if sk.compressed_ack:
        sk.net.mib.net_statistics[LINUX_MIB_TCPACKCOMPRESSED] += sk.compressed_ack
        sk.compressed_ack = 0
        sk.compressed_ack_timer.del_timer()
    if rcv_nxt != sk.rcv_nxt:
        return
    ack = sk.icsk_ack
    if ack.quick:
        pkts = 1 if ack.pending & ICSK_ACK_SCHED else 0
        if pkts >= ack.quick:
            ack.quick = 0
            ack.ato = TCP_ATO_MIN
        else:
            ack.quick -= pkts
    if ack.pending or sk.icsk_delack_timer.pending:
        inet_csk_clear_xmit_timer(sk, ICSK_TIME_DACK)


def tcp_event_data_sent(sk) -> None:
    now = sk.net.clock.now
    if tcp_packets_in_flight(sk) == 0:
        tcp_ca_event(sk, CA_EVENT_TX_START)
    sk.lsndtime = now
    ack = sk.icsk_ack
    if now - ack.lrcvtime < ack.ato and ack.pingpong < 0xFF:
        ack.pingpong += 1  # inet_csk_inc_pingpong_cnt(): a reply within ato of what came in


def tcp_packets_in_flight(sk) -> int:
    return sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out


# --- the SYN, the SYN-ACK, ACKs, FIN and RST

def tcp_connect_init(sk) -> None:
    """MSS from the route, the initial window and our window scale, the sequence space from write_seq."""
    values = sk.net.sysctl.values
    dst = __sk_dst_check(sk)
    if isinstance(dst, int):
        raise OSError(dst, "tcp_connect: no route to the peer")
    sk.tcp_header_len = TCP_HLEN + (TCPOLEN_TSTAMP_ALIGNED if values["net.ipv4.tcp_timestamps"] else 0)
    if sk.rx_opt.user_mss:
        sk.rx_opt.mss_clamp = sk.rx_opt.user_mss
    sk.max_window = 0
    tcp_sync_mss(sk, dst.dst_mtu())
    sk.advmss = tcp_mss_clamp(sk, dst_metric_advmss(dst))
    if sk.sk_userlocks & SOCK_RCVBUF_LOCK and (sk.window_clamp > tcp_full_space(sk) or sk.window_clamp == 0):
        sk.window_clamp = tcp_full_space(sk)  # SOCK_RCVBUF_LOCK: the user's smaller buffer bounds it
    ts_room = sk.tcp_header_len - TCP_HLEN if sk.rx_opt.ts_recent_stamp else 0
    sk.rcv_wnd, sk.window_clamp, sk.rx_opt.rcv_wscale = tcp_select_initial_window(
        sk.net, tcp_full_space(sk), sk.advmss - ts_room, sk.window_clamp, bool(values["net.ipv4.tcp_window_scaling"]))
    tcp_initialize_rcv_mss(sk)
    sk.rcv_ssthresh = sk.rcv_wnd
    sk.err = 0
    sk.snd_wnd = 0
    sk.snd_wl1 = 0
    sk.write_queue.clear()
    sk.rtx_queue.clear()
    sk.snd_una = sk.snd_sml = sk.snd_up = sk.snd_nxt = sk.pushed_seq = sk.write_seq
    sk.rcv_nxt = sk.rcv_wup = sk.copied_seq = 0
    sk.rto = TCP_TIMEOUT_INIT
    sk.retransmits = 0
    sk.packets_out = sk.sacked_out = sk.lost_out = sk.retrans_out = 0


def tcp_connect(sk) -> None:
    """tcp_connect(): the SYN, queued for retransmission, the RTO armed at 1 s.
    The caller (tcp_v4_connect()) set the addresses, ports, write_seq (the
    ISN), tsoffset and inet_id."""
    tcp_connect_init(sk)
    syn = TcpSkb(sk.write_seq, sk.write_seq + 1, TCPHDR_SYN, first_tx_mstamp=sk.net.clock.now,
                 truesize=skb_truesize(0))
    sk.write_seq += 1
    sk.retrans_stamp = sk.net.clock.now
    sk.rtx_queue.append(syn)
    sk.packets_out += 1
    sk.sk_wmem_queued += syn.truesize
    tcp_transmit_skb(sk, syn, why="tcp_connect")
    sk.snd_nxt = sk.write_seq
    sk.pushed_seq = sk.write_seq
    sk.net.mib.tcp_statistics[SNMP4_TCP_LIST.index("ActiveOpens")] += 1
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, sk.rto, tcp_rto_max(sk))


def tcp_openreq_init_rwin(req, sk_listener, dst) -> int:
    """The SYN-ACK's window and our scale (tcp_minisocks.c): the listener's
    buffer, the MSS less the timestamps if they were offered. Returns the MSS
    the SYN-ACK advertises."""
    mss = tcp_mss_clamp(sk_listener, dst_metric_advmss(dst))
    full_space = tcp_full_space(sk_listener)
    req.rsk_window_clamp = req.rsk_window_clamp or 0
    if sk_listener.sk_userlocks & SOCK_RCVBUF_LOCK and (req.rsk_window_clamp > full_space or req.rsk_window_clamp == 0):
        req.rsk_window_clamp = full_space
    req.rsk_rcv_wnd, req.rsk_window_clamp, req.rcv_wscale = tcp_select_initial_window(
        sk_listener.net, full_space, mss - (TCPOLEN_TSTAMP_ALIGNED if req.tstamp_ok else 0), req.rsk_window_clamp,
        req.wscale_ok)
    return mss


def tcp_make_synack(sk_listener, req, dst) -> tuple[bytearray, Lazy]:
    """The SYN-ACK segment for `req` over the route `dst` (checksum filled in)
    and its journey's summary; OutSegs counts it. The request's send_synack()
    (tcp_v4_send_synack(), tcp_v6_send_synack()) routes it and puts the IP
    header on."""
    net = sk_listener.net
    mss = tcp_openreq_init_rwin(req, sk_listener, dst) if not req.rsk_rcv_wnd else \
        tcp_mss_clamp(sk_listener, dst_metric_advmss(dst))
    now = net.clock.now
    # a SYN cookie's SYN-ACK carries its options in the TSval's low bits (cookie_init_timestamp())
    clock_ms = req.cookie_tsval if req.cookie_tsval is not None else int(now * 1000)
    tsval = (clock_ms + req.ts_off) & 0xFFFFFFFF
    if req.snt_synack is None:
        req.snt_tsval_first = tsval
    req.snt_tsval_last = tsval
    options = wire_tcp.write_options(tcp_synack_options(req, mss, tsval))
    flags = TCPHDR_SYN | TCPHDR_ACK
    ack_seq = (req.rcv_isn + 1) & 0xFFFFFFFF
    segment = wire_tcp.build_segment(req.ir_loc_addr, req.ir_rmt_addr, req.ir_num, req.ir_rmt_port, req.snt_isn,
                                     ack_seq, flags, min(req.rsk_rcv_wnd, U16_MAX), options)
    req.snt_synack = now
    net.mib.tcp_statistics[TCP_MIB_OUTSEGS] += 1
    return segment, Lazy(_segment_summary, req.ir_loc_addr, req.ir_rmt_addr, req.ir_num, req.ir_rmt_port, flags,
                         req.snt_isn, ack_seq, 0, "tcp_make_synack")


def tcp_send_synack(sk) -> int:
    """Simultaneous open: the SYN at the head of the retransmission queue, now
    SYN|ACK, goes again from the full socket in SYN_RECV."""
    syn = sk.rtx_queue[0] if sk.rtx_queue else None
    if syn is None or not syn.tcp_flags & TCPHDR_SYN:
        return errno.EFAULT
    syn.tcp_flags |= TCPHDR_ACK
    return tcp_transmit_skb(sk, syn, why="tcp_send_synack")


def tcp_send_ack(sk, rcv_nxt: int | None = None) -> None:
    """A bare ACK, at snd_nxt."""
    if sk.state == TCP_CLOSE:
        return
    ack = TcpSkb(sk.snd_nxt, sk.snd_nxt, TCPHDR_ACK)
    tcp_transmit_skb(sk, ack, rcv_nxt=rcv_nxt, why="tcp_send_ack")


def tcp_send_delayed_ack(sk) -> None:
    """Arm the delayed ACK: ato (40 ms at first), once inflated bounded by the
    RTT and by 500 ms (200 ms in pingpong mode or after a PSH), never beyond
    icsk_delack_max (200 ms) nor later than a timer already armed; a timer
    about to fire sends the ACK now."""
    ack = sk.icsk_ack
    ato = ack.ato
    if ato > TCP_DELACK_MIN:
        max_ato = TCP_DELACK_MAX if ack.pingpong or ack.pending & ICSK_ACK_PUSHED else 0.5
        if sk.srtt_us:
            max_ato = min(max_ato, max(usecs_to_jiffies(sk.srtt_us >> 3), TCP_DELACK_MIN))
        ato = min(ato, max_ato)
    ato = min(ato, TCP_DELACK_MAX)
    now = sk.net.clock.now
    timeout = now + ato
    if ack.pending & ICSK_ACK_TIMER:
        if ack.timeout <= now + ato / 4:
            tcp_send_ack(sk)
            return
        timeout = min(timeout, ack.timeout)
    ack.pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER
    ack.timeout = timeout
    sk.icsk_delack_timer.mod_timer(timeout)


def tcp_send_fin(sk) -> None:
    """FIN on the last unsent skb if there is one, else a FIN segment of its own, then push."""
    tail = sk.write_queue[-1] if sk.write_queue else None
    if tail is not None:
        tail.tcp_flags |= TCPHDR_FIN
        tail.end_seq += 1
    else:
        fin = TcpSkb(sk.write_seq, sk.write_seq + 1, TCPHDR_ACK | TCPHDR_FIN, truesize=skb_truesize(0))
        sk.write_queue.append(fin)
        sk.sk_wmem_queued += fin.truesize
    sk.write_seq += 1
    __tcp_push_pending_frames(sk, tcp_current_mss(sk), TCP_NAGLE_OFF)


def tcp_send_active_reset(sk) -> None:
    """RST|ACK at snd_nxt (tcp_acceptable_seq()), counted in OutRsts."""
    rst = TcpSkb(sk.snd_nxt, sk.snd_nxt, TCPHDR_ACK | TCPHDR_RST)
    sk.net.mib.tcp_statistics[TCP_MIB_OUTRSTS] += 1
    tcp_transmit_skb(sk, rst, why="tcp_send_active_reset")


# --- the send buffer (net/ipv4/tcp.c tcp_sendmsg_locked(), net/core/stream.c)

def skb_truesize(length: int) -> int:
    """SKB_TRUESIZE() of an skb with MAX_TCP_HEADER of head and `length` bytes of page frags."""
    return MAX_TCP_HEADER + SKB_SHINFO_SIZE + SK_BUFF_SIZE + length


def sk_stream_memory_free(sk) -> bool:
    """Room for another skb: sk_wmem_queued under sk_sndbuf, and the unsent
    bytes under tcp_notsent_lowat."""
    if sk.sk_wmem_queued >= sk.sk_sndbuf:
        return False
    lowat = sk.notsent_lowat or sk.net.sysctl.values["net.ipv4.tcp_notsent_lowat"]
    return ((sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF) < lowat


def tcp_sndbuf_expand(sk) -> None:
    """Room for two windows of cwnd (at least 10) full-sized skbs, up to tcp_wmem[2]."""
    if sk.sk_userlocks & SOCK_SNDBUF_LOCK:
        return
    per_mss = max(sk.rx_opt.mss_clamp, sk.mss_cache) + MAX_TCP_HEADER + SKB_SHINFO_SIZE
    per_mss = (1 << (per_mss - 1).bit_length()) + SK_BUFF_SIZE
    nr_segs = max(TCP_INIT_CWND, sk.snd_cwnd, sk.reordering + 1)
    sndmem = 2 * nr_segs * per_mss
    if sk.sk_sndbuf < sndmem:
        sk.sk_sndbuf = min(sndmem, sk.net.sysctl.values["net.ipv4.tcp_wmem"][2])


def tcp_should_expand_sndbuf(sk) -> bool:
    return not sk.sk_userlocks & SOCK_SNDBUF_LOCK and tcp_packets_in_flight(sk) < sk.snd_cwnd


def tcp_check_space(sk) -> None:
    """tcp_new_space(): after ACKed data freed the queue, grow the buffer while
    cwnd is not filled and clear SOCK_NOSPACE once a writer may go on."""
    if sk.sk_nospace:
        if tcp_should_expand_sndbuf(sk):
            tcp_sndbuf_expand(sk)
        if sk_stream_memory_free(sk):
            sk.sk_nospace = False


def tcp_xmit_size_goal(sk, mss_now: int) -> int:
    """How big an skb sendmsg builds: whole MSS fitting half the peer's largest
    window, at most GSO's 64 KiB."""
    size_goal = tcp_bound_to_half_wnd(sk, 65536)
    return max(size_goal - size_goal % mss_now, mss_now)


def tcp_skb_entail(sk, skb: TcpSkb) -> None:
    sk.write_queue.append(skb)
    sk.sk_wmem_queued += skb.truesize
    if sk.nonagle & TCP_NAGLE_PUSH:
        sk.nonagle &= ~TCP_NAGLE_PUSH
    tcp_slow_start_after_idle_check(sk)


def tcp_slow_start_after_idle_check(sk) -> None:
    """tcp_cwnd_restart(): after an idle RTO, cwnd halves per RTO idle down to the initial window."""
    if not sk.net.sysctl.values["net.ipv4.tcp_slow_start_after_idle"] or sk.packets_out:
        return
    delta = sk.net.clock.now - sk.lsndtime
    if delta <= sk.rto:
        return
    tcp_ca_event(sk, CA_EVENT_CWND_RESTART)
    sk.snd_ssthresh = max(sk.snd_ssthresh, (sk.snd_cwnd >> 1) + (sk.snd_cwnd >> 2))  # tcp_current_ssthresh()
    restart_cwnd = min(TCP_INIT_CWND, sk.snd_cwnd)
    cwnd = sk.snd_cwnd
    delta -= sk.rto
    while delta > 0 and cwnd > restart_cwnd:
        cwnd >>= 1
        delta -= sk.rto
    sk.snd_cwnd = max(cwnd, restart_cwnd)
    sk.snd_cwnd_stamp = sk.net.clock.now


def forced_push(sk) -> bool:
    return after(sk.write_seq, sk.pushed_seq + (sk.max_window >> 1))


def tcp_mark_push(sk, skb: TcpSkb) -> None:
    skb.tcp_flags |= TCPHDR_PSH
    sk.pushed_seq = sk.write_seq


def tcp_sendmsg_locked(sk, data: bytes | memoryview) -> int:
    """Copy `data` into the write queue and push; the bytes taken. A full send
    buffer with nothing taken raises BlockingIOError (EAGAIN, non-blocking)."""
    tcp_rate_check_app_limited(sk)
    mss_now = tcp_current_mss(sk)
    size_goal = tcp_xmit_size_goal(sk, mss_now)
    data = memoryview(data)
    copied = 0
    while copied < len(data):
        skb = sk.write_queue[-1] if sk.write_queue else None
        room = size_goal - len(skb.data) if skb is not None and not skb.tcp_flags & TCPHDR_FIN else 0
        if room <= 0:
            if not sk_stream_memory_free(sk):
                sk.sk_nospace = True
                break
            skb = TcpSkb(sk.write_seq, sk.write_seq, TCPHDR_ACK, truesize=skb_truesize(0))
            tcp_skb_entail(sk, skb)
            room = size_goal
        chunk = bytes(data[copied:copied + room])
        skb.data += chunk
        skb.end_seq += len(chunk)
        skb.truesize += len(chunk)
        sk.sk_wmem_queued += len(chunk)
        sk.write_seq += len(chunk)
        copied += len(chunk)
        if len(skb.data) < size_goal:
            continue
        if forced_push(sk):
            tcp_mark_push(sk, skb)
            __tcp_push_pending_frames(sk, mss_now, TCP_NAGLE_PUSH)
        elif skb is sk.write_queue[0]:
            tcp_write_xmit(sk, mss_now, TCP_NAGLE_PUSH, push_one=1)
    if not copied:
        raise BlockingIOError(errno.EAGAIN, "the send buffer is full")
    tcp_push(sk, mss_now, sk.nonagle)
    return copied


def tcp_rate_check_app_limited(sk) -> None:
    """tcp_rate.c: the application wrote less than an MSS beyond what was sent,
    cwnd is not full and nothing lost awaits a resend: the delivery samples until
    what is in flight now was delivered are application-limited."""
    if ((sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF) < sk.mss_cache and tcp_packets_in_flight(sk) < sk.snd_cwnd \
            and sk.lost_out <= sk.retrans_out:
        sk.app_limited = (sk.delivered + tcp_packets_in_flight(sk)) or 1


def tcp_push(sk, mss_now: int, nonagle: int) -> None:
    """The end of a write: PSH on the last skb, then send what may go."""
    if not sk.write_queue:
        return
    tcp_mark_push(sk, sk.write_queue[-1])
    __tcp_push_pending_frames(sk, mss_now, nonagle)


def tcp_push_pending_frames(sk) -> None:
    if sk.write_queue:
        __tcp_push_pending_frames(sk, tcp_current_mss(sk), sk.nonagle)


def __tcp_push_pending_frames(sk, cur_mss: int, nonagle: int) -> None:
    if sk.state == TCP_CLOSE:
        return
    if tcp_write_xmit(sk, cur_mss, nonagle):
        tcp_check_probe_timer(sk)


# --- tcp_write_xmit() and its tests

def tcp_cwnd_test(sk) -> int:
    """Segments cwnd still allows in one go: at most half of it."""
    in_flight = tcp_packets_in_flight(sk)
    cwnd = sk.snd_cwnd
    if in_flight >= cwnd:
        return 0
    return min(max(cwnd >> 1, 1), cwnd - in_flight)


def tcp_wnd_end(sk) -> int:
    return sk.snd_una + sk.snd_wnd


def tcp_snd_wnd_test(sk, skb: TcpSkb, cur_mss: int) -> bool:
    """The first MSS of `skb` fits the peer's window."""
    end_seq = skb.end_seq if len(skb.data) <= cur_mss else skb.seq + cur_mss
    return not after(end_seq, tcp_wnd_end(sk))


def tcp_minshall_check(sk) -> bool:
    return after(sk.snd_sml, sk.snd_una) and not after(sk.snd_sml, sk.snd_nxt)


def tcp_nagle_test(sk, skb: TcpSkb, cur_mss: int, nonagle: int) -> bool:
    """Whether `skb` may go now: pushed, a FIN, full-sized, or no small
    segment unacked (TCP_CORK holds every small one)."""
    if nonagle & TCP_NAGLE_PUSH or skb.tcp_flags & TCPHDR_FIN:
        return True
    partial = len(skb.data) < cur_mss
    held = partial and (nonagle & TCP_NAGLE_CORK or (not nonagle and sk.packets_out and tcp_minshall_check(sk)))
    return not held


def tcp_tso_autosize(sk, mss_now: int, min_tso_segs: int) -> int:
    """Segments per GSO skb: about 1 ms of the pacing rate (sk_pacing_rate >>
    sk_pacing_shift), plus sk_gso_max_size >> (min RTT >> tcp_tso_rtt_log)
    (a short RTT gets big skbs), at most sk_gso_max_size, at least
    `min_tso_segs`."""
    gso_max_size = GSO_LEGACY_MAX_SIZE - (MAX_TCP_HEADER + 1)  # sk_setup_caps()
    size = sk.sk_pacing_rate >> SK_PACING_SHIFT
    shift = sk.rtt_min >> sk.net.sysctl.values["net.ipv4.tcp_tso_rtt_log"]
    if shift < 32:  # BITS_PER_TYPE(sk->sk_gso_max_size)
        size += gso_max_size >> shift
    return max(min(size, gso_max_size) // mss_now, min_tso_segs)


def tcp_tso_segs(sk, mss_now: int) -> int:
    """tcp_tso_autosize() with tcp_min_tso_segs, within the route's device's
    gso_max_segs (read at each send: the kernel copies it into sk_gso_max_segs
    at sk_setup_caps(), so there a change reaches only sockets routed after it)."""
    tso_segs = tcp_tso_autosize(sk, mss_now, sk.net.sysctl.values["net.ipv4.tcp_min_tso_segs"])
    dst = sk.dst
    return min(tso_segs, dst.dev.gso_max_segs) if dst is not None else tso_segs


def tcp_write_xmit(sk, mss_now: int, nonagle: int, push_one: int = 0) -> bool:
    """Send from the head of the write queue while cwnd, the peer's window and
    Nagle allow; push_one 2 is a loss probe, which may exceed cwnd by one.
    True when nothing is in flight yet data waits (the probe timer's case)."""
    sent_pkts = 0
    is_cwnd_limited = False
    queue = sk.write_queue
    max_segs = tcp_tso_segs(sk, mss_now)
    while queue:
        skb = queue[0]
        cwnd_quota = tcp_cwnd_test(sk)
        if not cwnd_quota:
            if push_one == 2:
                cwnd_quota = 1
            else:
                is_cwnd_limited = True
                break
        if not tcp_snd_wnd_test(sk, skb, mss_now):
            break
        if len(skb.data) <= mss_now:
            if not tcp_nagle_test(sk, skb, mss_now, nonagle if len(queue) == 1 else TCP_NAGLE_PUSH):
                break
        else:
            limit = tcp_mss_split_point(sk, skb, mss_now, min(cwnd_quota, max_segs), nonagle)
            if limit < len(skb.data):
                tcp_fragment(sk, queue, skb, limit)
        segs = -(-len(skb.data) // mss_now) or 1
        if tcp_transmit_new(sk, skb, mss_now):
            break
        sent_pkts += segs
        if push_one:
            break
    is_cwnd_limited |= tcp_packets_in_flight(sk) >= sk.snd_cwnd
    if sent_pkts or is_cwnd_limited:
        tcp_cwnd_validate(sk, is_cwnd_limited)
    if sent_pkts:
        if sk.icsk_ca_state in (TCP_CA_Recovery, TCP_CA_CWR):  # tcp_in_cwnd_reduction()
            sk.prr_out += sent_pkts
        if push_one != 2:
            tcp_schedule_loss_probe(sk, False)
        return False
    return not sk.packets_out and bool(queue)


def tcp_mss_split_point(sk, skb: TcpSkb, mss_now: int, max_segs: int, nonagle: int) -> int:
    """How much of a multi-MSS skb goes now: `max_segs` MSS, less where the
    window ends; a last piece under an MSS only if Nagle lets it go."""
    window = (tcp_wnd_end(sk) - skb.seq) & 0xFFFFFFFF
    max_len = mss_now * max_segs
    if max_len <= window and skb is not sk.write_queue[-1]:
        return max_len
    needed = min(len(skb.data), window)
    if max_len <= needed:
        return max_len
    partial = needed % mss_now
    held = partial and (nonagle & TCP_NAGLE_CORK or (not nonagle and sk.packets_out and tcp_minshall_check(sk)))
    return needed - partial if held else needed


def tcp_fragment(sk, queue, skb: TcpSkb, length: int) -> TcpSkb:
    """Cut `skb` at `length` bytes (tso_fragment(), tcp_fragment()): the rest,
    a new skb charged to the send buffer, follows it in `queue` with the PSH
    and FIN; on the retransmission queue it keeps the SACK state and counts."""
    rest = TcpSkb(skb.seq + length, skb.end_seq, skb.tcp_flags, skb.data[length:], sacked=skb.sacked,
                  skb_mstamp=skb.skb_mstamp, first_tx_mstamp=skb.first_tx_mstamp, tx_delivered=skb.tx_delivered,
                  truesize=skb_truesize(len(skb.data) - length))
    skb.data = skb.data[:length]
    skb.end_seq = skb.seq + length
    # FIN goes with the rest; PSH stays on both halves of a write queue skb (each burst tcp_write_xmit()
    # cut from a pushed write ended in PSH on this kernel), only on the rest in the retransmission queue
    skb.tcp_flags &= ~TCPHDR_FIN if queue is sk.write_queue else ~(TCPHDR_FIN | TCPHDR_PSH)
    skb.truesize -= len(rest.data)
    sk.sk_wmem_queued += skb_truesize(0)
    queue.insert(queue.index(skb) + 1, rest)
    if queue is sk.rtx_queue:
        sk.packets_out += 1
        sacked = skb.sacked
        sk.lost_out += bool(sacked & TCPCB_LOST)
        sk.retrans_out += bool(sacked & TCPCB_SACKED_RETRANS)
        sk.sacked_out += bool(sacked & TCPCB_SACKED_ACKED)
    return rest


def tcp_transmit_new(sk, skb: TcpSkb, mss_now: int) -> int:
    """Send the head skb as one GSO skb (gso_size mss_now); on the
    retransmission queue it goes MSS by MSS (PSH and FIN on the last), each
    through tcp_event_new_data_sent(). What a failed send kept back stays queued."""
    err = tcp_transmit_skb(sk, skb, mss_now=mss_now)
    if err:
        return err
    now = sk.net.clock.now
    sk.write_queue.popleft()
    data, flags = skb.data, skb.tcp_flags
    inner_flags = flags & ~(TCPHDR_FIN | TCPHDR_PSH)
    for offset in range(0, max(len(data), 1), mss_now):
        piece = data[offset:offset + mss_now]
        is_last = offset + mss_now >= len(data)
        seq = skb.seq + offset
        # the skb's own overhead stays with its first segment: the queue is charged as for one GSO skb
        seg = TcpSkb(seq, skb.end_seq if is_last else seq + len(piece), flags if is_last else inner_flags, piece,
                     skb_mstamp=now, first_tx_mstamp=now, tx_delivered=sk.delivered,
                     tx_app_limited=bool(sk.app_limited),
                     truesize=len(piece) + (skb.truesize - len(data) if not offset else 0))
        tcp_event_new_data_sent(sk, seg, mss_now)
    return 0


def tcp_event_new_data_sent(sk, skb: TcpSkb, mss_now: int) -> None:
    prior_packets = sk.packets_out
    sk.snd_nxt = skb.end_seq
    sk.rtx_queue.append(skb)
    sk.packets_out += 1
    if not prior_packets or sk.icsk_pending == ICSK_TIME_LOSS_PROBE:
        tcp_rearm_rto(sk)
    sk.net.mib.net_statistics[LINUX_MIB_TCPORIGDATASENT] += 1
    if len(skb.data) < mss_now:
        sk.snd_sml = skb.end_seq  # tcp_minshall_update()
    tcp_check_space(sk)


def tcp_cwnd_validate(sk, is_cwnd_limited: bool) -> None:
    """Remember whether cwnd was the limit in this window, for cong_avoid."""
    if not before(sk.snd_una, sk.cwnd_usage_seq) or is_cwnd_limited or \
            (not sk.is_cwnd_limited and sk.packets_out > sk.max_packets_out):
        sk.is_cwnd_limited = is_cwnd_limited
        sk.max_packets_out = sk.packets_out
        sk.cwnd_usage_seq = sk.snd_nxt
    if tcp_is_cwnd_limited(sk):
        sk.snd_cwnd_stamp = sk.net.clock.now


# --- retransmission, loss probes and window probes

def tcp_retransmit_skb(sk, skb: TcpSkb, segs: int = 1) -> int:
    """Send `skb` (a segment of the retransmission queue) again; the MSS may
    have shrunk, then only its first MSS goes (the rest stays queued)."""
    cur_mss = tcp_current_mss(sk)
    if before(skb.seq, sk.snd_una):
        return 0
    if not before(skb.seq, tcp_wnd_end(sk)) and skb.seq != sk.snd_una:
        return errno.EAGAIN
    if len(skb.data) > cur_mss:
        tcp_fragment(sk, sk.rtx_queue, skb, cur_mss)
    err = tcp_transmit_skb(sk, skb, why="tcp_retransmit_skb")
    if err:
        return err
    net = sk.net
    net.mib.tcp_statistics[TCP_MIB_RETRANSSEGS] += 1
    sk.bytes_retrans += len(skb.data)
    if skb.tcp_flags & TCPHDR_SYN:
        net.mib.net_statistics[LINUX_MIB_TCPSYNRETRANS] += 1
    sk.total_retrans += 1
    if not skb.sacked & TCPCB_SACKED_RETRANS:
        skb.sacked |= TCPCB_SACKED_RETRANS
        sk.retrans_out += 1
    skb.sacked |= TCPCB_EVER_RETRANS
    skb.retrans_count += 1
    if not sk.retrans_stamp:
        sk.retrans_stamp = net.clock.now
    if sk.undo_retrans < 0:
        sk.undo_retrans = 0
    sk.undo_retrans += 1
    return 0


def tcp_xmit_retransmit_queue(sk) -> None:
    """In recovery: resend the segments marked lost and not yet resent, as cwnd
    allows, walking the queue as it is (skb_rbtree_walk_from(): the rest of a
    segment cut to a smaller MSS is the next one)."""
    if not sk.packets_out:
        return
    index = 0
    while index < len(sk.rtx_queue):
        skb = sk.rtx_queue[index]
        index += 1
        if tcp_packets_in_flight(sk) >= sk.snd_cwnd:
            break
        sacked = skb.sacked
        if sacked & (TCPCB_SACKED_ACKED | TCPCB_SACKED_RETRANS) or not sacked & TCPCB_LOST:
            continue
        if tcp_retransmit_skb(sk, skb):
            break
        if skb is sk.rtx_queue[0] and sk.icsk_pending != ICSK_TIME_REO_TIMEOUT:
            inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, sk.rto, tcp_rto_max(sk))


def tcp_schedule_loss_probe(sk, advancing_rto: bool) -> bool:
    """Arm the tail loss probe (SACK connections in Open or CWR): 2 * srtt
    + 2 ms, the minimum RTO more with a single segment out, 1 s with no RTT
    sample; never later than the RTO."""
    early_retrans = sk.net.sysctl.values["net.ipv4.tcp_early_retrans"]
    if early_retrans not in (3, 4) or not sk.packets_out or not sk.rx_opt.sack_ok or \
            sk.icsk_ca_state not in (TCP_CA_Open, TCP_CA_CWR):
        return False
    if sk.srtt_us:
        timeout_us = sk.srtt_us >> 2
        timeout_us += int(tcp_rto_min(sk) * 1_000_000) if sk.packets_out == 1 else TCP_TIMEOUT_MIN_US
        timeout = usecs_to_jiffies(timeout_us)
    else:
        timeout = TCP_TIMEOUT_INIT
    rto_delta_us = int(sk.rto * 1_000_000) if advancing_rto else tcp_rto_delta_us(sk)
    if rto_delta_us > 0:
        timeout = min(timeout, usecs_to_jiffies(rto_delta_us))
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_LOSS_PROBE, timeout, tcp_rto_max(sk))
    return True


def tcp_send_loss_probe(sk) -> None:
    """The probe: new data if the window allows, else the last segment again;
    one outstanding at a time (tlp_high_seq). Then the RTO from now."""
    if sk.tlp_high_seq:
        tcp_rearm_rto(sk)
        return
    sk.tlp_retrans = False
    mss = tcp_current_mss(sk)
    sent = False
    if sk.write_queue and tcp_snd_wnd_test(sk, sk.write_queue[0], mss):
        pcount = sk.packets_out
        tcp_write_xmit(sk, mss, TCP_NAGLE_OFF, push_one=2)
        sent = sk.packets_out > pcount
    elif sk.rtx_queue:
        sent = not tcp_retransmit_skb(sk, sk.rtx_queue[-1])
        sk.tlp_retrans = sent
    if sent:
        sk.tlp_high_seq = sk.snd_nxt
        sk.net.mib.net_statistics[LINUX_MIB_TCPLOSSPROBES] += 1
        sk.icsk_pending = 0
    tcp_rearm_rto(sk)


def tcp_xmit_probe_skb(sk, urgent: bool, mib: int) -> int:
    """A bare ACK one below snd_una (an old sequence the peer must answer)."""
    probe = TcpSkb(sk.snd_una - (0 if urgent else 1), sk.snd_una - (0 if urgent else 1), TCPHDR_ACK)
    sk.net.mib.net_statistics[mib] += 1
    return tcp_transmit_skb(sk, probe, why="tcp_xmit_probe_skb")


def tcp_write_wakeup(sk, mib: int) -> int:
    """A window probe: the head of the unsent data if any of it fits the
    window (up to an MSS, PSH), else a bare ACK at snd_una - 1."""
    if sk.state == TCP_CLOSE:
        return -1
    if sk.write_queue and before(sk.write_queue[0].seq, tcp_wnd_end(sk)):
        skb = sk.write_queue[0]
        mss = tcp_current_mss(sk)
        seg_size = min((tcp_wnd_end(sk) - skb.seq) & 0xFFFFFFFF, mss)
        if seg_size < len(skb.data):
            tcp_fragment(sk, sk.write_queue, skb, seg_size)
        skb.tcp_flags |= TCPHDR_PSH
        return tcp_transmit_new(sk, skb, mss)
    if between(sk.snd_up, sk.snd_una + 1, sk.snd_una + 0xFFFF):
        tcp_xmit_probe_skb(sk, True, mib)
    return tcp_xmit_probe_skb(sk, False, mib)


def tcp_send_probe0(sk) -> None:
    """The zero-window probe and the next one's time, backing off to tcp_retries2."""
    err = tcp_write_wakeup(sk, LINUX_MIB_TCPWINPROBE)
    if sk.packets_out or not sk.write_queue:
        sk.probes_out = 0
        sk.backoff = 0
        sk.icsk_probes_tstamp = 0.0
        return
    sk.probes_out += 1
    if err <= 0:
        if sk.backoff < sk.net.sysctl.values["net.ipv4.tcp_retries2"]:
            sk.backoff += 1
        timeout = tcp_probe0_when(sk, tcp_rto_max(sk))
    else:
        timeout = TCP_RESOURCE_PROBE_INTERVAL
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, timeout, tcp_rto_max(sk))
