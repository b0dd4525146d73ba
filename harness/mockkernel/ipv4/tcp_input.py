"""TCP receive processing (net/ipv4/tcp_input.c) for a socket past the lookup.

tcp_rcv_established() and tcp_rcv_state_process() take a segment parsed into
`TcpCb` (struct tcp_skb_cb with the header fields). tcp_validate_incoming()
applies PAWS (tcp_paws_check(), tcp_disordered_ack_check()), the sequence
check (tcp_sequence(): TCP_OLD_SEQUENCE, TCP_INVALID_SEQUENCE,
TCP_INVALID_END_SEQUENCE, answered with a duplicate ACK rate-limited by
tcp_invalid_ratelimit), RFC 5961's RST and SYN rules (a RST exactly at rcv_nxt
resets, one elsewhere in the window draws a challenge ACK: TCP_RESET; a SYN
draws one: TCP_INVALID_SYN). tcp_ack() drops an ACK for unsent data
(TCP_ACK_UNSENT_DATA) or older than the window (TCP_TOO_OLD_ACK), data and
all, answering both with a challenge ACK (tcp_send_challenge_ack()), updates the
send window and snd_una, then hands the rest to the sender's half
(tcp_recovery.py). tcp_data_queue() queues in-order data, reassembles the
out-of-order queue (tcp_data_queue_ofo(): TCP_OFOMERGE for what it already
holds, D-SACK for duplicates), keeps the SACK blocks the receiver advertises
(tcp_sack_new_ofo_skb(), at most 4, the newest first), drops old data
(TCP_OLD_DATA), data past the window (TCP_OVERWINDOW) and data into a closed
window (TCP_ZEROWINDOW), and counts what it charges to sk_rmem_alloc against
sk_rcvbuf (a segment arriving with sk_rmem_alloc over it is PROTO_MEM;
sk_forward_alloc reserves whole pages). tcp_event_data_recv() runs the
delayed-ACK estimator (ato from TCP_ATO_MIN, quickack mode for the first 16
ACKs' worth); __tcp_ack_snd_check() ACKs at once for more than one full
segment, in quickack mode or when ICSK_ACK_NOW is set, and delays otherwise.
Header prediction (pred_flags) takes in-order data and pure ACKs on the fast
path once pages are reserved (TCPHPHits, TCPHPAcks). tcp_rcv_space_adjust()
grows sk_rcvbuf (DRS) when the application reads more per RTT, up to
tcp_rmem[2]. tcp_measure_rcv_mss() sets scaling_ratio from the payload and
truesize of a segment that changes rcv_mss, and window_clamp with it.
A segment in order is copied into the tailroom of the receive queue's last
skb when it fits (tcp_try_coalesce(), TCPRcvCoalesce), charging nothing.
Left out: urgent data, ECN, TCP Fast Open, MPTCP, memory pressure, pruning
and collapsing, coalescing within the out-of-order queue; segments already
in the out-of-order queue that are dropped later (TCP_OFOMERGE when
replaced, TCP_OFO_DROP) are counted but their journeys ended when they were
queued.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.core.snmp import LINUX_MIB, SNMP4_TCP_LIST
from harness.mockkernel.ipv4 import tcp_cong, tcp_output, tcp_recovery
from harness.mockkernel.ipv4.tcp_minisocks import (LINUX_MIB_PAWSESTABREJECTED, TCP_TIMEWAIT_LEN, tcp_fin_time,
                                                   tcp_time_wait)
from harness.mockkernel.ipv4.tcp_output import TCP_ATO_MIN, TCP_MAX_WSCALE, TCP_MIN_MSS, TCP_MSS_DEFAULT
from harness.mockkernel.ipv4.tcp_recovery import (FLAG_DATA, FLAG_NO_CHALLENGE_ACK, FLAG_SLOWPATH,
                                                  FLAG_SND_UNA_ADVANCED, FLAG_UPDATE_TS_RECENT, FLAG_WIN_UPDATE)
from harness.mockkernel.ipv4.tcp_sock import (ICSK_ACK_NOW, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED,
                                              RCV_SHUTDOWN, SEND_SHUTDOWN, SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK,
                                              TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1,
                                              TCP_FIN_WAIT2, TCP_INIT_CWND, TCP_LAST_ACK, TCP_SYN_RECV, TCP_SYN_SENT,
                                              TCP_TIME_WAIT, TcpSkb, TcpSock, after, before, between, tcp_clock_ms,
                                              tcp_close_state, tcp_done, tcp_set_state)
from harness.mockkernel.wire import tcp as wire_tcp
from harness.mockkernel.wire.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN

TCP_MAX_QUICKACKS = 16
TCP_NUM_SACKS = 4
TCP_SACK_BLOCKS_EXPECTED = 2  # what an ACK with timestamps surely carries: a block past them sends the ACK
TCP_FASTRETRANS_THRESH = 3
TCP_PAWS_WINDOW = 1  # replay window, in TSval ticks
TCP_PAWS_MSL = 60  # seconds: a RST from a peer this quiet is accepted even failing PAWS
TCP_PAWS_WRAP = 2**31 // 1000  # seconds after which ts_recent is too old to compare with
TCP_RMEM_TO_WIN_SCALE = 8
PAGE_SIZE = 4096

LINUX_MIB_PAWSACTIVEREJECTED = LINUX_MIB["PAWSActive"]
LINUX_MIB_PAWS_OLD_ACK = LINUX_MIB["PAWSOldAck"]
LINUX_MIB_BEYOND_WINDOW = LINUX_MIB["BeyondWindow"]
LINUX_MIB_TCPACKSKIPPEDPAWS = LINUX_MIB["TCPACKSkippedPAWS"]
LINUX_MIB_TCPACKSKIPPEDSEQ = LINUX_MIB["TCPACKSkippedSeq"]
LINUX_MIB_TCPACKSKIPPEDCHALLENGE = LINUX_MIB["TCPACKSkippedChallenge"]
LINUX_MIB_TCPCHALLENGEACK = LINUX_MIB["TCPChallengeACK"]
LINUX_MIB_TCPSYNCHALLENGE = LINUX_MIB["TCPSYNChallenge"]
LINUX_MIB_DELAYEDACKLOST = LINUX_MIB["DelayedACKLost"]
LINUX_MIB_TCPDSACKOLDSENT = LINUX_MIB["TCPDSACKOldSent"]
LINUX_MIB_TCPDSACKOFOSENT = LINUX_MIB["TCPDSACKOfoSent"]
LINUX_MIB_TCPOFOQUEUE = LINUX_MIB["TCPOFOQueue"]
LINUX_MIB_TCPOFODROP = LINUX_MIB["TCPOFODrop"]
LINUX_MIB_TCPOFOMERGE = LINUX_MIB["TCPOFOMerge"]
LINUX_MIB_TCPRCVCOALESCE = LINUX_MIB["TCPRcvCoalesce"]
LINUX_MIB_TCPZEROWINDOWDROP = LINUX_MIB["TCPZeroWindowDrop"]
LINUX_MIB_TCPRCVQDROP = LINUX_MIB["TCPRcvQDrop"]
LINUX_MIB_TCPPUREACKS = LINUX_MIB["TCPPureAcks"]
LINUX_MIB_TCPHPACKS = LINUX_MIB["TCPHPAcks"]
LINUX_MIB_TCPHPHITS = LINUX_MIB["TCPHPHits"]
LINUX_MIB_TCPABORTONDATA = LINUX_MIB["TCPAbortOnData"]
TCP_MIB_INERRS = SNMP4_TCP_LIST.index("InErrs")
FLAG_TS_PROGRESS = 0x40000  # tcp_replace_ts_recent(): the peer's clock moved on



class TcpCb:
    """struct tcp_skb_cb of a received segment, with what tcp_hdr() gives:
    seq..end_seq (SYN and FIN count one), the ACK, flags, the raw window,
    where the payload is, and the SACK blocks it carries."""

    __slots__ = ("skb", "seq", "end_seq", "ack_seq", "tcp_flags", "window", "th", "doff", "data_off",
                 "data_len", "sack_blocks")

    def __init__(self, skb, th: int, end: int) -> None:
        buf = skb.buf
        _, _, seq, ack_seq, doff_byte, flags, window, _, _ = wire_tcp.unpack(buf, th)
        doff = wire_tcp.DATA_OFFSET_LEN[doff_byte]
        self.skb, self.th, self.doff = skb, th, doff
        self.seq, self.ack_seq, self.tcp_flags, self.window = seq, ack_seq, flags, window
        self.data_off = th + doff
        self.data_len = end - th - doff
        self.end_seq = (seq + self.data_len + bool(flags & TCPHDR_SYN) + bool(flags & TCPHDR_FIN)) & 0xFFFFFFFF
        self.sack_blocks: list[tuple[int, int]] = []

    def payload(self) -> bytes:
        return bytes(self.skb.buf[self.data_off:self.data_off + self.data_len])


def tcp_parse_options(net, cb: TcpCb, opt_rx, estab: bool) -> None:
    """tcp_parse_options(): timestamps (when negotiated, or on a SYN while
    tcp_timestamps is on), and on a SYN the MSS (capped by user_mss), window
    scale (capped at 14) and SACK-permitted as the sysctls allow; SACK blocks
    when SACK was negotiated."""
    opt_rx.saw_tstamp = False
    if cb.doff == wire_tcp.TCP_HLEN:
        return
    parsed = wire_tcp.parse_options(cb.skb.buf, cb.th, cb.doff)
    sysctl = net.sysctl.values
    if parsed.ts is not None and ((estab and opt_rx.tstamp_ok) or (not estab and sysctl["net.ipv4.tcp_timestamps"])):
        opt_rx.saw_tstamp = True
        opt_rx.rcv_tsval, opt_rx.rcv_tsecr = parsed.ts
    if not cb.tcp_flags & TCPHDR_SYN or estab:
        if parsed.sack_blocks and opt_rx.sack_ok:
            cb.sack_blocks = parsed.sack_blocks
        return
    if parsed.mss:
        opt_rx.mss_clamp = min(parsed.mss, opt_rx.user_mss) if opt_rx.user_mss else parsed.mss
    if parsed.wscale is not None and sysctl["net.ipv4.tcp_window_scaling"]:
        opt_rx.wscale_ok = True
        opt_rx.snd_wscale = min(parsed.wscale, TCP_MAX_WSCALE)
    if parsed.sack_perm and sysctl["net.ipv4.tcp_sack"]:
        opt_rx.sack_ok = True


def tcp_paws_check(rx_opt, paws_win: int, now: float) -> bool:
    """True when the segment passes PAWS: its TSval is not older than
    ts_recent by more than paws_win, or ts_recent is too old to judge."""
    if _s32(rx_opt.ts_recent - rx_opt.rcv_tsval) <= paws_win:
        return True
    if now >= rx_opt.ts_recent_stamp + TCP_PAWS_WRAP:
        return True
    return not rx_opt.ts_recent


def tcp_paws_reject(rx_opt, rst: bool, now: float) -> bool:
    if tcp_paws_check(rx_opt, 0, now):
        return False
    # a RST from a peer quiet for TCP_PAWS_MSL passes: it may have rebooted
    return not (rst and now >= rx_opt.ts_recent_stamp + TCP_PAWS_MSL)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def tcp_store_ts_recent(sk: TcpSock) -> None:
    sk.rx_opt.ts_recent = sk.rx_opt.rcv_tsval
    sk.rx_opt.ts_recent_stamp = sk.net.clock.now


def tcp_replace_ts_recent(sk: TcpSock, seq: int) -> int:
    """ts_recent follows a segment at or before rcv_wup that passes PAWS."""
    rx_opt = sk.rx_opt
    if rx_opt.saw_tstamp and not after(seq, sk.rcv_wup) and tcp_paws_check(rx_opt, 0, sk.net.clock.now):
        delta = _s32(rx_opt.rcv_tsval - rx_opt.ts_recent)
        tcp_store_ts_recent(sk)
        return FLAG_TS_PROGRESS if delta > 0 else 0
    return 0


def tcp_oow_rate_limited(sk, cb: TcpCb, mib_index: int) -> bool:
    """__tcp_oow_rate_limited(): one answer to out-of-window segments per
    tcp_invalid_ratelimit; data without SYN is always answered."""
    if cb.seq != cb.end_seq and not cb.tcp_flags & TCPHDR_SYN:
        return False
    net = sk.net
    now = net.clock.now
    limit = net.sysctl.values["net.ipv4.tcp_invalid_ratelimit"] / 1000
    if sk.last_oow_ack_time is not None and 0 <= now - sk.last_oow_ack_time < limit:
        net.mib.net_statistics[mib_index] += 1
        return True
    sk.last_oow_ack_time = now
    return False


def tcp_send_challenge_ack(sk: TcpSock) -> None:
    """RFC 5961: an ACK that tells the peer where we are, rate-limited per
    socket (tcp_challenge_ack_limit is INT_MAX by default: no global limit)."""
    net = sk.net
    now = net.clock.now
    limit = net.sysctl.values["net.ipv4.tcp_invalid_ratelimit"] / 1000
    if sk.last_oow_ack_time is not None and 0 <= now - sk.last_oow_ack_time < limit:
        net.mib.net_statistics[LINUX_MIB_TCPACKSKIPPEDCHALLENGE] += 1
        return
    sk.last_oow_ack_time = now
    net.mib.net_statistics[LINUX_MIB_TCPCHALLENGEACK] += 1
    tcp_output.tcp_send_ack(sk)


def tcp_dsack_set(sk: TcpSock, seq: int, end_seq: int) -> None:
    if sk.rx_opt.sack_ok and sk.net.sysctl.values["net.ipv4.tcp_dsack"]:
        mib = LINUX_MIB_TCPDSACKOLDSENT if before(seq, sk.rcv_nxt) else LINUX_MIB_TCPDSACKOFOSENT
        sk.net.mib.net_statistics[mib] += 1
        sk.rx_opt.dsack = True
        sk.duplicate_sack = [[seq, end_seq]]


def tcp_dsack_extend(sk: TcpSock, seq: int, end_seq: int) -> None:
    if not sk.rx_opt.dsack:
        tcp_dsack_set(sk, seq, end_seq)
    else:
        _sack_extend(sk.duplicate_sack[0], seq, end_seq)


def _sack_extend(block: list, seq: int, end_seq: int) -> bool:
    """tcp_sack_extend(): widen `block` by [seq, end_seq) if they touch."""
    if not after(block[0], end_seq) and not after(seq, block[1]):
        if before(seq, block[0]):
            block[0] = seq
        if after(end_seq, block[1]):
            block[1] = end_seq
        return True
    return False


def tcp_sack_new_ofo_skb(sk: TcpSock, seq: int, end_seq: int) -> None:
    """The block that grew moves to the front, merging with any it now
    touches; a new one goes to the front, the oldest beyond 4 falls off."""
    sacks = sk.selective_acks
    for index, block in enumerate(sacks):
        if _sack_extend(block, seq, end_seq):
            if index >= TCP_SACK_BLOCKS_EXPECTED:
                tcp_sack_compress_send_ack(sk)
            sacks.insert(0, sacks.pop(index))
            first = sacks[0]
            sacks[1:] = [other for other in sacks[1:] if not _sack_extend(first, other[0], other[1])]
            break
    else:
        if len(sacks) >= TCP_SACK_BLOCKS_EXPECTED:
            tcp_sack_compress_send_ack(sk)
        sacks.insert(0, [seq, end_seq])
        del sacks[TCP_NUM_SACKS:]
    sk.rx_opt.num_sacks = len(sacks)


def tcp_sack_remove(sk: TcpSock) -> None:
    """Blocks rcv_nxt has passed go; with nothing out of order, all go."""
    if not sk.out_of_order_queue:
        sk.selective_acks = []
    else:
        sk.selective_acks = [block for block in sk.selective_acks if before(sk.rcv_nxt, block[0])]
    sk.rx_opt.num_sacks = len(sk.selective_acks)


def inet_csk_schedule_ack(sk: TcpSock) -> None:
    sk.icsk_ack.pending |= ICSK_ACK_SCHED


def tcp_incr_quickack(sk: TcpSock, max_quickacks: int) -> None:
    quickacks = sk.rcv_wnd // (2 * sk.icsk_ack.rcv_mss) or 2
    quickacks = min(quickacks, max_quickacks)
    if quickacks > sk.icsk_ack.quick:
        sk.icsk_ack.quick = quickacks


def tcp_enter_quickack_mode(sk: TcpSock, max_quickacks: int) -> None:
    tcp_incr_quickack(sk, max_quickacks)
    sk.icsk_ack.pingpong = 0  # inet_csk_exit_pingpong_mode()
    sk.icsk_ack.ato = TCP_ATO_MIN


def tcp_in_quickack_mode(sk: TcpSock) -> bool:
    return bool(sk.icsk_ack.quick) and sk.icsk_ack.pingpong < sk.net.sysctl.values["net.ipv4.tcp_pingpong_thresh"]


def tcp_measure_rcv_mss(sk: TcpSock, cb: TcpCb) -> None:
    """The peer's MSS as its full segments show it; a short segment marks the
    end of a write (ICSK_ACK_PUSHED: ACK when the application reads it)."""
    icsk_ack = sk.icsk_ack
    lss = icsk_ack.last_seg_size
    icsk_ack.last_seg_size = 0
    length = cb.data_len
    if length >= icsk_ack.rcv_mss:
        if length != icsk_ack.rcv_mss:
            tcp_measure_scaling_ratio(sk, length, cb.skb.truesize)
        icsk_ack.rcv_mss = min(length, sk.advmss)
        if cb.tcp_flags & TCPHDR_PSH:
            icsk_ack.pending |= ICSK_ACK_PUSHED
        return
    length += cb.doff
    if length >= TCP_MSS_DEFAULT + 20 or (
            length >= TCP_MIN_MSS + 20 and not cb.tcp_flags & (TCPHDR_FIN | TCPHDR_SYN | TCPHDR_PSH | 0x20)):
        length -= sk.tcp_header_len
        icsk_ack.last_seg_size = length
        if length == lss:
            icsk_ack.rcv_mss = length
            return
    if icsk_ack.pending & ICSK_ACK_PUSHED:
        icsk_ack.pending |= ICSK_ACK_PUSHED2
    icsk_ack.pending |= ICSK_ACK_PUSHED


def tcp_measure_scaling_ratio(sk: TcpSock, skb_len: int, truesize: int) -> None:
    """tcp_measure_rcv_mss() on a segment that changes rcv_mss: scaling_ratio
    becomes this skb's payload per 256 bytes of truesize; a new ratio moves
    window_clamp to what sk_rcvbuf now allows (tcp_set_window_clamp()) and
    keeps rcvq_space within it."""
    old_ratio = sk.scaling_ratio
    sk.scaling_ratio = (skb_len << TCP_RMEM_TO_WIN_SCALE) // truesize or 1
    if sk.scaling_ratio != old_ratio:
        tcp_output.tcp_set_window_clamp(sk, tcp_output.tcp_win_from_space(sk, sk.sk_rcvbuf))
        sk.rcvq_space.space = min(sk.rcvq_space.space, sk.window_clamp)


def tcp_grow_window(sk: TcpSock, skb_len: int, truesize: int) -> None:
    """rcv_ssthresh, the window the receiver offers, grows by at least two
    segments for each segment whose overhead the buffer can carry."""
    room = min(sk.window_clamp, tcp_output.tcp_space(sk)) - sk.rcv_ssthresh
    if room <= 0:
        return
    if tcp_output.tcp_win_from_space(sk, truesize) <= skb_len:
        incr = 2 * sk.advmss
    else:
        incr = _tcp_grow_window(sk, skb_len, truesize)
    if incr:
        incr = max(incr, 2 * skb_len)
        sk.rcv_ssthresh += min(room, incr)
        sk.icsk_ack.quick |= 1


def _tcp_grow_window(sk: TcpSock, skb_len: int, truesize: int) -> int:
    """__tcp_grow_window(): a segment with more overhead grows the window
    only while rcv_ssthresh is small against the buffer."""
    truesize_win = tcp_output.tcp_win_from_space(sk, truesize)
    window = tcp_output.tcp_win_from_space(sk, min(sk.sk_rcvbuf, sk.net.sysctl.values["net.ipv4.tcp_rmem"][2])) >> 1
    while sk.rcv_ssthresh <= window:
        if truesize_win <= skb_len:
            return 2 * sk.icsk_ack.rcv_mss
        truesize_win >>= 1
        window >>= 1
    return 0


def tcp_event_data_recv(sk: TcpSock, cb: TcpCb, truesize: int) -> None:
    """The delayed-ACK estimator: the first data starts quickack mode with
    ato at TCP_ATO_MIN; segments closer than ato halve it toward the gap; a
    gap over the RTO quickacks again."""
    icsk_ack = sk.icsk_ack
    inet_csk_schedule_ack(sk)
    tcp_measure_rcv_mss(sk, cb)
    tcp_rcv_rtt_measure(sk)
    now = sk.net.clock.now
    if not icsk_ack.ato:
        tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
        icsk_ack.ato = TCP_ATO_MIN
    else:
        gap = now - icsk_ack.lrcvtime
        if gap <= TCP_ATO_MIN / 2:
            icsk_ack.ato = icsk_ack.ato / 2 + TCP_ATO_MIN / 2
        elif gap < icsk_ack.ato:
            icsk_ack.ato = min(icsk_ack.ato / 2 + gap, sk.rto)
        elif gap > sk.rto:
            tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
    icsk_ack.lrcvtime = now
    if cb.data_len >= 128:
        tcp_grow_window(sk, cb.data_len, truesize)


def tcp_rcv_rtt_measure(sk: TcpSock) -> None:
    """The receiver's RTT without timestamps: the time to receive a window's worth."""
    est = sk.rcv_rtt_est
    if est.time and before(sk.rcv_nxt, est.seq):
        return
    if est.time:
        _tcp_rcv_rtt_update(sk, int((sk.net.clock.now - est.time) * 1e6), True)
    est.seq = (sk.rcv_nxt + sk.rcv_wnd) & 0xFFFFFFFF
    est.time = sk.net.clock.now


def _tcp_rcv_rtt_update(sk: TcpSock, sample_us: int, win_dep: bool) -> None:
    """tcp_rcv_rtt_update(): rtt_us is 8 times the estimate; with win_dep
    the estimate only falls."""
    est = sk.rcv_rtt_est
    new_sample = est.rtt_us
    m = max(sample_us, 1)
    if new_sample:
        if not win_dep:
            m -= new_sample >> 3
            new_sample += m
        else:
            m <<= 3
            new_sample = min(m, new_sample)
    else:
        new_sample = m << 3
    est.rtt_us = new_sample


def tcp_rcv_rtt_measure_ts(sk: TcpSock, cb: TcpCb) -> None:
    """With timestamps: a new echo on a full segment gives the RTT
    (tcp_rtt_tsopt_us(): a 0 ms delta is no sample)."""
    rx_opt = sk.rx_opt
    if rx_opt.rcv_tsecr == sk.rcv_rtt_last_tsecr:
        return
    sk.rcv_rtt_last_tsecr = rx_opt.rcv_tsecr
    if _s32(cb.end_seq - cb.seq) >= sk.icsk_ack.rcv_mss:
        delta_ms = (tcp_clock_ms(sk.net) - rx_opt.rcv_tsecr) & 0xFFFFFFFF
        if 0 < delta_ms < 2**31 // 1000:
            _tcp_rcv_rtt_update(sk, delta_ms * 1000, False)


def tcp_rcv_space_adjust(sk: TcpSock) -> None:
    """Dynamic right-sizing: once per receiver RTT, what the application
    read beyond what is still queued, when more than last time, grows
    rcvq_space and (tcp_rcvbuf_grow()) sk_rcvbuf."""
    space = sk.rcvq_space
    if not sk.rcv_rtt_est.rtt_us:
        return
    now = sk.net.clock.now
    if (now - space.time) * 1e6 < sk.rcv_rtt_est.rtt_us >> 3:
        return
    copied = _s32(sk.copied_seq - space.seq) - _s32(sk.rcv_nxt - sk.copied_seq)
    if copied > space.space:
        tcp_rcvbuf_grow(sk, copied)
    space.seq, space.time = sk.copied_seq, now


def tcp_rcvbuf_grow(sk: TcpSock, newval: int) -> None:
    """Twice what was read (DRS is one RTT late), more while it grows (the
    sender may double its rate), plus what waits out of order; unless
    SO_RCVBUF fixed it, sk_rcvbuf follows, up to tcp_rmem[2]."""
    oldval, sk.rcvq_space.space = sk.rcvq_space.space, newval
    sysctl = sk.net.sysctl.values
    if not sysctl["net.ipv4.tcp_moderate_rcvbuf"] or sk.sk_userlocks & SOCK_RCVBUF_LOCK:
        return
    rcvwin = newval << 1
    if oldval:
        rcvwin += (rcvwin * (newval - oldval) // oldval) << 1
    if sk.out_of_order_queue:
        rcvwin += _s32(sk.out_of_order_queue[-1].end_seq - sk.rcv_nxt)
    rcvbuf = min(_tcp_space_from_win(sk, rcvwin), sysctl["net.ipv4.tcp_rmem"][2])
    if rcvbuf > sk.sk_rcvbuf:
        sk.sk_rcvbuf = rcvbuf
        sk.window_clamp = tcp_output.tcp_win_from_space(sk, rcvbuf)


def _tcp_space_from_win(sk: TcpSock, win: int) -> int:
    return (win << TCP_RMEM_TO_WIN_SCALE) // sk.scaling_ratio


def tcp_rmem_schedule_fails(sk: TcpSock, truesize: int) -> bool:
    """tcp_try_rmem_schedule() without memory pressure (nothing to prune or
    collapse here): tcp_can_ingest() takes a segment while sk_rmem_alloc is
    not over sk_rcvbuf; sk_rmem_schedule() reserves whole pages ahead."""
    if sk.rmem_alloc > sk.sk_rcvbuf:
        return True
    sk_mem_schedule(sk, truesize)
    return False


def sk_mem_schedule(sk: TcpSock, size: int) -> None:
    """__sk_mem_schedule(): sk_forward_alloc grows by whole pages to cover `size`."""
    if size > sk.sk_forward_alloc:
        sk.sk_forward_alloc += -(-(size - sk.sk_forward_alloc) // PAGE_SIZE) * PAGE_SIZE


def sk_mem_uncharge(sk: TcpSock, size: int) -> None:
    """What a read frees returns to sk_forward_alloc; whole pages go back
    (sk_mem_reclaim())."""
    sk.rmem_alloc -= size
    sk.sk_forward_alloc += size
    sk.sk_forward_alloc -= sk.sk_forward_alloc // PAGE_SIZE * PAGE_SIZE


def tcp_queue_rcv(sk: TcpSock, cb: TcpCb, truesize: int) -> None:
    """In-order data to the receive queue; rcv_nxt moves past it."""
    segment = TcpSkb(cb.seq, cb.end_seq, cb.tcp_flags, cb.payload(), truesize=truesize, tailroom=cb.skb.tailroom())
    _charge_and_queue(sk, segment)


def _charge_and_queue(sk: TcpSock, segment: TcpSkb) -> None:
    queue = sk.receive_queue
    if not (queue and tcp_try_coalesce(sk, queue[-1], segment)):
        offset = _s32(sk.rcv_nxt - segment.seq)
        if offset > 0:
            segment.data = segment.data[offset:]
            segment.seq = sk.rcv_nxt
        queue.append(segment)
        sk.rmem_alloc += segment.truesize  # skb_set_owner_r(): sk_mem_charge()
        sk.sk_forward_alloc -= segment.truesize
    sk.rcv_nxt = segment.end_seq
    sk.bytes_received += len(segment.data)


def tcp_try_coalesce(sk: TcpSock, to: TcpSkb, segment: TcpSkb) -> bool:
    """A segment that starts where the queue's last skb ends is copied into
    that skb's tailroom when it fits, charging nothing more
    (skb_try_coalesce(); the other way, stealing the head or page frags,
    never applies to the linear kmalloc'd heads modelled here)."""
    length = len(segment.data)
    if segment.seq != to.end_seq or length > to.tailroom:
        return False
    to.data += segment.data
    to.tailroom -= length
    to.end_seq = segment.end_seq
    to.tcp_flags |= segment.tcp_flags
    sk.net.mib.net_statistics[LINUX_MIB_TCPRCVCOALESCE] += 1
    return True


def tcp_fin(sk: TcpSock) -> None:
    """A FIN in sequence: CLOSE_WAIT from ESTABLISHED (pingpong mode from now),
    CLOSING from FIN_WAIT1 (simultaneous close), TIME_WAIT from FIN_WAIT2.
    Anything out of order past the FIN is dropped."""
    inet_csk_schedule_ack(sk)
    sk.shutdown |= RCV_SHUTDOWN
    sk.sock_done = True
    state = sk.state
    if state in (TCP_SYN_RECV, TCP_ESTABLISHED):
        tcp_set_state(sk, TCP_CLOSE_WAIT)
        sk.icsk_ack.pingpong = sk.net.sysctl.values["net.ipv4.tcp_pingpong_thresh"]
    elif state == TCP_FIN_WAIT1:
        tcp_output.tcp_send_ack(sk)
        tcp_set_state(sk, TCP_CLOSING)
    elif state == TCP_FIN_WAIT2:
        tcp_output.tcp_send_ack(sk)
        tcp_time_wait(sk, TCP_TIME_WAIT, 0)
    sk.out_of_order_queue.clear()
    sk.selective_acks = []
    sk.rx_opt.num_sacks = 0


def tcp_ofo_queue(sk: TcpSock) -> None:
    """Move what rcv_nxt has reached from the out-of-order queue to the
    receive queue; what it held below rcv_nxt is D-SACKed, what rcv_nxt has
    passed entirely is dropped (TCP_OFO_DROP)."""
    ofo = sk.out_of_order_queue
    dsack_high = sk.rcv_nxt
    while ofo and not after(ofo[0].seq, sk.rcv_nxt):
        segment = ofo.pop(0)
        sk.rmem_alloc -= segment.truesize  # it stays charged: _charge_and_queue() counts it again
        sk.sk_forward_alloc += segment.truesize
        if before(segment.seq, dsack_high):
            tcp_dsack_extend(sk, segment.seq, segment.end_seq if before(segment.end_seq, dsack_high) else dsack_high)
        if not after(segment.end_seq, sk.rcv_nxt):
            continue
        _charge_and_queue(sk, segment)
        if segment.tcp_flags & TCPHDR_FIN:
            tcp_fin(sk)
            return


def tcp_data_queue(sk: TcpSock, cb: TcpCb) -> None:
    """Step 7, the segment text: in order to the receive queue, old data
    D-SACKed and dropped, out of window dropped, ahead of rcv_nxt to the
    out-of-order queue."""
    if cb.seq == cb.end_seq:
        return
    truesize = cb.skb.truesize
    sk.rx_opt.dsack = False
    mib = sk.net.mib.net_statistics
    if cb.seq == sk.rcv_nxt:
        if tcp_output.tcp_receive_window(sk) == 0:
            if not (cb.data_len == 0 and cb.tcp_flags & TCPHDR_FIN):
                mib[LINUX_MIB_TCPZEROWINDOWDROP] += 1
                return _out_of_window(sk, cb, DropReason.TCP_ZEROWINDOW)
        return _queue_and_out(sk, cb, truesize)
    if not after(cb.end_seq, sk.rcv_nxt):
        mib[LINUX_MIB_DELAYEDACKLOST] += 1
        tcp_dsack_set(sk, cb.seq, cb.end_seq)
        return _out_of_window(sk, cb, DropReason.TCP_OLD_DATA)
    if not before(cb.seq, (sk.rcv_nxt + tcp_output.tcp_receive_window(sk)) & 0xFFFFFFFF):
        return _out_of_window(sk, cb, DropReason.TCP_OVERWINDOW)
    if before(cb.seq, sk.rcv_nxt):
        tcp_dsack_set(sk, cb.seq, sk.rcv_nxt)
        if not tcp_output.tcp_receive_window(sk):
            mib[LINUX_MIB_TCPZEROWINDOWDROP] += 1
            return _out_of_window(sk, cb, DropReason.TCP_ZEROWINDOW)
        return _queue_and_out(sk, cb, truesize)
    tcp_data_queue_ofo(sk, cb, truesize)


def _out_of_window(sk: TcpSock, cb: TcpCb, reason: DropReason) -> None:
    tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
    inet_csk_schedule_ack(sk)
    kfree_skb(cb.skb, reason, Stage.SOCKET, "tcp_data_queue")


def _queue_and_out(sk: TcpSock, cb: TcpCb, truesize: int) -> None:
    if tcp_rmem_schedule_fails(sk, truesize):
        sk.icsk_ack.pending |= ICSK_ACK_NOW
        inet_csk_schedule_ack(sk)
        if sk.receive_queue and cb.data_len:
            sk.net.mib.net_statistics[LINUX_MIB_TCPRCVQDROP] += 1
            sk.sk_drops += 1
            return kfree_skb(cb.skb, DropReason.PROTO_MEM, Stage.SOCKET, "tcp_data_queue")
    tcp_queue_rcv(sk, cb, truesize)
    sk.net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "QUEUED", f"rmem {sk.rmem_alloc}/{sk.sk_rcvbuf}")
    if cb.data_len:
        tcp_event_data_recv(sk, cb, truesize)
    if cb.tcp_flags & TCPHDR_FIN:
        tcp_fin(sk)
    if sk.out_of_order_queue:
        tcp_ofo_queue(sk)
        if not sk.out_of_order_queue:
            sk.icsk_ack.pending |= ICSK_ACK_NOW  # RFC 5681 4.2: ACK at once when a hole fills
    if sk.rx_opt.num_sacks:
        tcp_sack_remove(sk)
    tcp_fast_path_check(sk)


def tcp_data_queue_ofo(sk: TcpSock, cb: TcpCb, truesize: int) -> None:
    mib = sk.net.mib.net_statistics
    if tcp_rmem_schedule_fails(sk, truesize):
        mib[LINUX_MIB_TCPOFODROP] += 1
        sk.sk_drops += 1
        return kfree_skb(cb.skb, DropReason.PROTO_MEM, Stage.SOCKET, "tcp_data_queue_ofo")
    tcp_measure_rcv_mss(sk, cb)
    sk.pred_flags = None  # no header prediction while a hole is open
    inet_csk_schedule_ack(sk)
    mib[LINUX_MIB_TCPOFOQUEUE] += 1
    seq, end_seq = cb.seq, cb.end_seq
    ofo = sk.out_of_order_queue
    base = sk.rcv_nxt
    rel = lambda s: (s - base) & 0xFFFFFFFF  # noqa: E731 - the queue's order, from rcv_nxt
    index = 0
    while index < len(ofo) and rel(ofo[index].seq) <= rel(seq):
        other = ofo[index]
        if before(seq, other.end_seq):
            if not after(end_seq, other.end_seq):
                mib[LINUX_MIB_TCPOFOMERGE] += 1
                kfree_skb(cb.skb, DropReason.TCP_OFOMERGE, Stage.SOCKET, "tcp_data_queue_ofo")
                tcp_dsack_set(sk, seq, end_seq)
                return _add_sack(sk, seq, end_seq)
            if after(seq, other.seq):
                tcp_dsack_set(sk, seq, other.end_seq)
            else:
                tcp_dsack_extend(sk, other.seq, other.end_seq)
                mib[LINUX_MIB_TCPOFOMERGE] += 1
                sk_mem_uncharge(sk, other.truesize)
                del ofo[index]
                break
        index += 1
    segment = TcpSkb(seq, end_seq, cb.tcp_flags, cb.payload(), truesize=truesize, tailroom=cb.skb.tailroom())
    ofo.insert(index, segment)
    sk.rmem_alloc += truesize
    sk.sk_forward_alloc -= truesize
    sk.net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "OFO", f"rmem {sk.rmem_alloc}/{sk.sk_rcvbuf}")
    while index + 1 < len(ofo):
        other = ofo[index + 1]
        if not after(end_seq, other.seq):
            break
        if before(end_seq, other.end_seq):
            tcp_dsack_extend(sk, other.seq, end_seq)
            break
        tcp_dsack_extend(sk, other.seq, other.end_seq)
        mib[LINUX_MIB_TCPOFOMERGE] += 1
        sk_mem_uncharge(sk, other.truesize)
        del ofo[index + 1]
    _add_sack(sk, seq, end_seq)
    if sk.rx_opt.sack_ok:
        tcp_grow_window(sk, cb.data_len, truesize)


def _add_sack(sk: TcpSock, seq: int, end_seq: int) -> None:
    if sk.rx_opt.sack_ok:
        tcp_sack_new_ofo_skb(sk, seq, end_seq)


def __tcp_ack_snd_check(sk: TcpSock, ofo_possible: bool) -> None:
    """ACK now for more than one full segment not yet ACKed (when the window
    the ACK would open is no smaller), in quickack mode, or when ICSK_ACK_NOW
    is set; without out-of-order data, schedule the delayed ACK. With it, the
    first three duplicate ACKs for one rcv_nxt go at once, later ones are
    compressed into one sent 5 % of the RTT later, at most
    tcp_comp_sack_delay_ns (1 ms), or after tcp_comp_sack_nr of them."""
    if ((_s32(sk.rcv_nxt - sk.rcv_wup) > sk.icsk_ack.rcv_mss
         and tcp_output.__tcp_select_window(sk) >= sk.rcv_wnd)
            or tcp_in_quickack_mode(sk) or sk.icsk_ack.pending & ICSK_ACK_NOW):
        return tcp_output.tcp_send_ack(sk)
    if not ofo_possible or not sk.out_of_order_queue:
        return tcp_output.tcp_send_delayed_ack(sk)
    sysctl = sk.net.sysctl.values
    if not sk.rx_opt.sack_ok or sk.compressed_ack >= sysctl["net.ipv4.tcp_comp_sack_nr"]:
        return tcp_output.tcp_send_ack(sk)
    if sk.compressed_ack_rcv_nxt != sk.rcv_nxt:
        sk.compressed_ack_rcv_nxt = sk.rcv_nxt
        sk.dup_ack_counter = 0
    if sk.dup_ack_counter < TCP_FASTRETRANS_THRESH:
        sk.dup_ack_counter += 1
        return tcp_output.tcp_send_ack(sk)
    sk.compressed_ack += 1
    timer = sk.compressed_ack_timer
    if timer is None:
        timer = sk.compressed_ack_timer = Timer(sk.net.clock, lambda: tcp_compressed_ack_kick(sk))
    elif timer.pending:
        return
    rtt = sk.rcv_rtt_est.rtt_us
    if sk.srtt_us and sk.srtt_us < rtt:
        rtt = sk.srtt_us
    delay = min(sysctl["net.ipv4.tcp_comp_sack_delay_ns"], rtt * 1000 // 8 // 20) / 1e9  # both RTTs are << 3
    timer.mod_timer(sk.net.clock.now + delay)


def tcp_compressed_ack_kick(sk: TcpSock) -> None:
    """The compressed ACK's timer: one ACK for them all (TCPAckCompressed
    counts the others, in tcp_event_ack_sent())."""
    if sk.compressed_ack:
        sk.compressed_ack -= 1
        tcp_output.tcp_send_ack(sk)


def tcp_sack_compress_send_ack(sk: TcpSock) -> None:
    """A SACK block beyond the first two moved: the compressed ACK goes now."""
    if not sk.compressed_ack:
        return
    sk.compressed_ack_timer.del_timer()
    sk.compressed_ack -= 1
    tcp_output.tcp_send_ack(sk)


def tcp_ack_snd_check(sk: TcpSock) -> None:
    if sk.icsk_ack.pending & ICSK_ACK_SCHED:
        __tcp_ack_snd_check(sk, True)


def tcp_data_snd_check(sk: TcpSock) -> None:
    tcp_output.tcp_push_pending_frames(sk)
    tcp_output.tcp_check_space(sk)


def tcp_reset(sk: TcpSock) -> None:
    """A valid RST: the error the application sees depends on the state."""
    if sk.state == TCP_CLOSE:
        return
    sk.err = {TCP_SYN_SENT: 111, TCP_CLOSE_WAIT: 32}.get(sk.state, 104)  # ECONNREFUSED, EPIPE, ECONNRESET
    tcp_write_queue_purge(sk)
    tcp_done(sk)


def tcp_write_queue_purge(sk: TcpSock) -> None:
    sk.write_queue.clear()
    sk.rtx_queue.clear()
    sk.sk_wmem_queued = 0
    sk.packets_out = sk.sacked_out = sk.lost_out = sk.retrans_out = 0


def tcp_reset_check(sk: TcpSock, cb: TcpCb) -> bool:
    """A RST at rcv_nxt - 1 after the peer's FIN resets too."""
    return cb.seq == (sk.rcv_nxt - 1) & 0xFFFFFFFF and sk.state in (TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING)


def tcp_sequence(sk: TcpSock, cb: TcpCb) -> DropReason | None:
    if before(cb.end_seq, sk.rcv_wup):
        return DropReason.TCP_OLD_SEQUENCE
    seq_limit = (sk.rcv_nxt + tcp_output.tcp_receive_window(sk)) & 0xFFFFFFFF
    if after(cb.end_seq, seq_limit):
        if not after(cb.end_seq - bool(cb.tcp_flags & TCPHDR_FIN), seq_limit):
            return None  # a FIN just past the window is looked at later
        if after(cb.seq, seq_limit):
            return DropReason.TCP_INVALID_SEQUENCE
        if sk.receive_queue:
            return DropReason.TCP_INVALID_END_SEQUENCE
    return None


def tcp_may_update_window(sk: TcpSock, ack: int, ack_seq: int, nwin: int) -> bool:
    return (after(ack, sk.snd_una) or after(ack_seq, sk.snd_wl1)
            or (ack_seq == sk.snd_wl1 and (nwin > sk.snd_wnd or not nwin)))


def tcp_disordered_ack_check(sk: TcpSock, cb: TcpCb) -> DropReason | None:
    """An ACK failing PAWS is still taken when it is a pure duplicate ACK
    that updates nothing and is within the replay window (RFC 7323 5.3)."""
    reason = DropReason.TCP_RFC7323_PAWS
    if not cb.tcp_flags & TCPHDR_ACK or cb.seq != cb.end_seq:
        return reason
    if cb.seq != sk.rcv_nxt:
        return DropReason.TCP_RFC7323_PAWS_ACK if before(cb.seq, sk.rcv_nxt) else reason
    if cb.ack_seq != sk.snd_una:
        return reason
    if tcp_may_update_window(sk, cb.ack_seq, cb.seq, cb.window << sk.rx_opt.snd_wscale):
        return reason
    if _s32(sk.rx_opt.ts_recent - sk.rx_opt.rcv_tsval) > int(sk.rto * 1024):
        return reason
    return None


def tcp_send_dupack(sk: TcpSock, cb: TcpCb) -> None:
    if cb.end_seq != cb.seq and before(cb.seq, sk.rcv_nxt):
        sk.net.mib.net_statistics[LINUX_MIB_DELAYEDACKLOST] += 1
        tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
        if sk.rx_opt.sack_ok and sk.net.sysctl.values["net.ipv4.tcp_dsack"]:
            end_seq = sk.rcv_nxt if after(cb.end_seq, sk.rcv_nxt) else cb.end_seq
            tcp_dsack_set(sk, cb.seq, end_seq)
    tcp_output.tcp_send_ack(sk)


def tcp_validate_incoming(sk: TcpSock, cb: TcpCb, syn_inerr: bool) -> bool:
    """PAWS, then steps 1 (sequence), 2 (RST) and 4 (SYN) of RFC 793's
    SEGMENT ARRIVES as Linux does them; False when the segment is consumed."""
    net = sk.net
    mib = net.mib.net_statistics
    flags = cb.tcp_flags
    rx_opt = sk.rx_opt
    if rx_opt.saw_tstamp and not tcp_paws_check(rx_opt, TCP_PAWS_WINDOW, net.clock.now):
        reason = tcp_disordered_ack_check(sk, cb)
        if reason is not None and not flags & TCPHDR_RST:
            if flags & TCPHDR_SYN:
                return _syn_challenge(sk, cb, syn_inerr)
            if reason == DropReason.TCP_RFC7323_PAWS_ACK:
                mib[LINUX_MIB_PAWS_OLD_ACK] += 1
                return _discard(cb, reason)
            mib[LINUX_MIB_PAWSESTABREJECTED] += 1
            if not tcp_oow_rate_limited(sk, cb, LINUX_MIB_TCPACKSKIPPEDPAWS):
                tcp_send_dupack(sk, cb)
            return _discard(cb, reason)
    reason = tcp_sequence(sk, cb)
    if reason is not None:
        if not flags & TCPHDR_RST:
            if flags & TCPHDR_SYN:
                return _syn_challenge(sk, cb, syn_inerr)
            if reason in (DropReason.TCP_INVALID_SEQUENCE, DropReason.TCP_INVALID_END_SEQUENCE):
                mib[LINUX_MIB_BEYOND_WINDOW] += 1
            if not tcp_oow_rate_limited(sk, cb, LINUX_MIB_TCPACKSKIPPEDSEQ):
                tcp_send_dupack(sk, cb)
        elif tcp_reset_check(sk, cb):
            return _reset(sk, cb)
        return _discard(cb, reason)
    if flags & TCPHDR_RST:
        if cb.seq == sk.rcv_nxt or tcp_reset_check(sk, cb):
            return _reset(sk, cb)
        if rx_opt.sack_ok and sk.selective_acks:
            if cb.seq == max((block[1] for block in sk.selective_acks), key=lambda s: _s32(s - sk.rcv_nxt)):
                return _reset(sk, cb)
        tcp_send_challenge_ack(sk)
        return _discard(cb, DropReason.TCP_RESET)
    if flags & TCPHDR_SYN:
        if (sk.state == TCP_SYN_RECV and flags & TCPHDR_ACK and (cb.seq + 1) & 0xFFFFFFFF == cb.end_seq
                and (cb.seq + 1) & 0xFFFFFFFF == sk.rcv_nxt and cb.ack_seq == sk.snd_nxt):
            return True
        return _syn_challenge(sk, cb, syn_inerr)
    return True


def _syn_challenge(sk: TcpSock, cb: TcpCb, syn_inerr: bool) -> bool:
    if syn_inerr:
        sk.net.mib.tcp_statistics[TCP_MIB_INERRS] += 1
    sk.net.mib.net_statistics[LINUX_MIB_TCPSYNCHALLENGE] += 1
    tcp_send_challenge_ack(sk)
    return _discard(cb, DropReason.TCP_INVALID_SYN)


def _discard(cb: TcpCb, reason: DropReason) -> bool:
    kfree_skb(cb.skb, reason, Stage.SOCKET, "tcp_validate_incoming")
    return False


def _reset(sk: TcpSock, cb: TcpCb) -> bool:
    sk.net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "RESET", "tcp_reset")
    tcp_reset(sk)
    return False


def tcp_snd_una_update(sk: TcpSock, ack: int) -> None:
    sk.bytes_acked += _s32(ack - sk.snd_una)
    sk.snd_una = ack


def tcp_ack_update_window(sk: TcpSock, cb: TcpCb, ack: int, ack_seq: int) -> int:
    flag = 0
    nwin = cb.window
    if not cb.tcp_flags & TCPHDR_SYN:
        nwin <<= sk.rx_opt.snd_wscale
    if tcp_may_update_window(sk, ack, ack_seq, nwin):
        flag |= FLAG_WIN_UPDATE
        sk.snd_wl1 = ack_seq
        if sk.snd_wnd != nwin:
            sk.snd_wnd = nwin
            sk.pred_flags = None  # the only place the sender's fast path comes back
            tcp_fast_path_check(sk)
            if nwin > sk.max_window:
                sk.max_window = nwin
                tcp_output.tcp_sync_mss(sk, sk.icsk_pmtu_cookie)
    tcp_snd_una_update(sk, ack)
    return flag


def tcp_ack(sk: TcpSock, cb: TcpCb, flag: int) -> DropReason | int:
    """Step 5: the ACK's validation and the window are here, the rest of
    tcp_ack() is the sender's (tcp_recovery.tcp_ack_tail()). Where the
    kernel returns a negative drop reason this returns the DropReason; 0 for
    an old ACK, 1 for an ACK taken."""
    prior_snd_una = sk.snd_una
    ack, ack_seq = cb.ack_seq, cb.seq
    if before(ack, prior_snd_una):
        max_window = min(sk.max_window, sk.bytes_acked)
        if before(ack, (prior_snd_una - max_window) & 0xFFFFFFFF):
            if not flag & FLAG_NO_CHALLENGE_ACK:
                tcp_send_challenge_ack(sk)
            return DropReason.TCP_TOO_OLD_ACK
        if cb.sack_blocks:  # old_ack: SACK and D-SACK information still counts
            flag |= tcp_recovery.tcp_sacktag_write_queue(sk, cb.sack_blocks, prior_snd_una)
            flag, rexmit = tcp_recovery.tcp_fastretrans_alert(sk, prior_snd_una, 0, flag)
            tcp_recovery.tcp_xmit_recovery(sk, rexmit)
        return 0
    if after(ack, sk.snd_nxt):
        if not flag & FLAG_NO_CHALLENGE_ACK:
            tcp_send_challenge_ack(sk)  # RFC 5961 5.2 and RFC 793 3.9: tell the peer our snd_nxt
        return DropReason.TCP_ACK_UNSENT_DATA
    if after(ack, prior_snd_una):
        flag |= FLAG_SND_UNA_ADVANCED
    prior_fack = tcp_recovery.tcp_highest_sack_seq(sk)
    prior_packets = sk.packets_out
    if flag & FLAG_UPDATE_TS_RECENT:
        flag |= tcp_replace_ts_recent(sk, cb.seq)
    if flag & (FLAG_SLOWPATH | FLAG_SND_UNA_ADVANCED) == FLAG_SND_UNA_ADVANCED:
        # header prediction held: the window is unchanged, only snd_una moves
        sk.snd_wl1 = ack_seq
        tcp_snd_una_update(sk, ack)
        flag |= FLAG_WIN_UPDATE
        sk.net.mib.net_statistics[LINUX_MIB_TCPHPACKS] += 1
    else:
        if ack_seq != cb.end_seq:
            flag |= FLAG_DATA
        else:
            sk.net.mib.net_statistics[LINUX_MIB_TCPPUREACKS] += 1
        flag |= tcp_ack_update_window(sk, cb, ack, ack_seq)
    tcp_recovery.tcp_ack_tail(sk, ack, prior_snd_una, prior_fack, prior_packets, flag, cb.sack_blocks)
    return 1


def tcp_fast_path_on(sk: TcpSock, snd_wnd: int | None = None) -> None:
    """__tcp_fast_path_on(): predict segments with our usual header length,
    ACK (PSH allowed) and the peer's current window field."""
    window = sk.snd_wnd >> sk.rx_opt.snd_wscale if snd_wnd is None else snd_wnd
    sk.pred_flags = (sk.tcp_header_len, window)


def tcp_fast_path_check(sk: TcpSock) -> None:
    if not sk.out_of_order_queue and sk.rcv_wnd and sk.rmem_alloc < sk.sk_rcvbuf:
        tcp_fast_path_on(sk)


def tcp_rcv_established(sk: TcpSock, cb: TcpCb) -> None:
    """Header prediction (the fast path for a pure sender's ACKs and a pure
    receiver's in-order data: TCPHPAcks, TCPHPHits), else the slow path."""
    rx_opt = sk.rx_opt
    rx_opt.saw_tstamp = False
    if (sk.pred_flags == (cb.doff, cb.window) and cb.tcp_flags & ~TCPHDR_PSH == TCPHDR_ACK
            and cb.seq == sk.rcv_nxt and not after(cb.ack_seq, sk.snd_nxt)):
        if _tcp_fast_path(sk, cb):
            return
    elif not cb.tcp_flags & (TCPHDR_ACK | TCPHDR_RST | TCPHDR_SYN):
        return kfree_skb(cb.skb, DropReason.TCP_FLAGS, Stage.SOCKET, "tcp_rcv_established")
    tcp_parse_options(sk.net, cb, rx_opt, True)
    if rx_opt.saw_tstamp and rx_opt.rcv_tsecr:
        rx_opt.rcv_tsecr = (rx_opt.rcv_tsecr - sk.tsoffset) & 0xFFFFFFFF
    if not tcp_validate_incoming(sk, cb, True):
        return
    _tcp_rcv_step5(sk, cb)


def _tcp_rcv_step5(sk: TcpSock, cb: TcpCb) -> None:
    reason = tcp_ack(sk, cb, FLAG_SLOWPATH | FLAG_UPDATE_TS_RECENT)
    if isinstance(reason, DropReason):
        return kfree_skb(cb.skb, reason, Stage.SOCKET, "tcp_rcv_established")
    tcp_rcv_rtt_measure_ts(sk, cb)
    tcp_data_queue(sk, cb)
    tcp_data_snd_check(sk)
    tcp_ack_snd_check(sk)


def _tcp_fast_path(sk: TcpSock, cb: TcpCb) -> bool:
    """The predicted segment; False to take the slow path after all."""
    rx_opt = sk.rx_opt
    flag = 0
    delta = 0
    if sk.tcp_header_len == wire_tcp.TCP_HLEN + wire_tcp.TCPOLEN_TSTAMP_ALIGNED:
        if not wire_tcp.only_aligned_timestamp(cb.skb.buf, cb.th, cb.doff):
            return False
        rx_opt.saw_tstamp = True
        rx_opt.rcv_tsval, tsecr = wire_tcp.aligned_timestamp(cb.skb.buf, cb.th)
        rx_opt.rcv_tsecr = (tsecr - sk.tsoffset) & 0xFFFFFFFF if tsecr else 0
        delta = _s32(rx_opt.rcv_tsval - rx_opt.ts_recent)
        if delta < 0:
            return False  # PAWS may fail: look carefully in the slow path
    timestamped = sk.tcp_header_len != wire_tcp.TCP_HLEN
    if not cb.data_len:
        if timestamped and sk.rcv_nxt == sk.rcv_wup:
            tcp_store_ts_recent(sk)
            flag |= FLAG_TS_PROGRESS if delta > 0 else 0
        tcp_ack(sk, cb, flag)
        tcp_data_snd_check(sk)
        sk.rcv_rtt_last_tsecr = rx_opt.rcv_tsecr
        return True
    if after(cb.end_seq, (sk.rcv_nxt + tcp_output.tcp_receive_window(sk)) & 0xFFFFFFFF):
        if tcp_validate_incoming(sk, cb, True):
            _tcp_rcv_step5(sk, cb)
        return True
    truesize = cb.skb.truesize
    if truesize > sk.sk_forward_alloc:
        _tcp_rcv_step5(sk, cb)  # no pages reserved for it yet
        return True
    if timestamped and sk.rcv_nxt == sk.rcv_wup:
        tcp_store_ts_recent(sk)
        flag |= FLAG_TS_PROGRESS if delta > 0 else 0
    tcp_rcv_rtt_measure_ts(sk, cb)
    sk.net.mib.net_statistics[LINUX_MIB_TCPHPHITS] += 1
    tcp_queue_rcv(sk, cb, truesize)
    sk.net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "QUEUED", f"rmem {sk.rmem_alloc}/{sk.sk_rcvbuf}")
    tcp_event_data_recv(sk, cb, truesize)
    if cb.ack_seq != sk.snd_una:
        tcp_ack(sk, cb, flag | FLAG_DATA)
        tcp_data_snd_check(sk)
        if not sk.icsk_ack.pending & ICSK_ACK_SCHED:
            return True
    else:
        sk.snd_wl1 = cb.seq  # tcp_update_wl()
    __tcp_ack_snd_check(sk, False)
    return True


def tcp_init_wl(sk: TcpSock, seq: int) -> None:
    sk.snd_wl1 = seq


def tcp_finish_connect(sk: TcpSock) -> None:
    tcp_set_state(sk, TCP_ESTABLISHED)
    sk.icsk_ack.lrcvtime = sk.net.clock.now
    tcp_init_transfer(sk)
    sk.lsndtime = sk.net.clock.now
    if not sk.rx_opt.snd_wscale:
        tcp_fast_path_on(sk, sk.snd_wnd)
    else:
        sk.pred_flags = None


def tcp_init_transfer(sk: TcpSock) -> None:
    """The initial congestion window (1 after more than one SYN or SYN-ACK
    retransmission), congestion control, and the buffers."""
    sk.snd_cwnd = 1 if sk.total_retrans > 1 else TCP_INIT_CWND
    sk.snd_cwnd_stamp = sk.net.clock.now
    tcp_cong.tcp_init_congestion_control(sk)
    tcp_init_buffer_space(sk)


def tcp_init_buffer_space(sk: TcpSock) -> None:
    """The send buffer grows to the initial cwnd's worth; window_clamp is the
    buffer's window less room for one segment (tcp_app_win), rcv_ssthresh
    stays under it, and DRS starts from the initial window (at most 10 MSS)."""
    if not sk.sk_userlocks & SOCK_SNDBUF_LOCK:
        tcp_output.tcp_sndbuf_expand(sk)
    sk.rcvq_space.time = sk.net.clock.now
    sk.rcvq_space.seq = sk.copied_seq
    app_win = sk.net.sysctl.values["net.ipv4.tcp_app_win"]
    maxwin = tcp_output.tcp_full_space(sk)
    advmss = sk.advmss
    if sk.window_clamp >= maxwin:
        sk.window_clamp = maxwin
        if app_win and maxwin > 4 * advmss:
            sk.window_clamp = max(maxwin - (maxwin >> app_win), 4 * advmss)
    if app_win and sk.window_clamp > 2 * advmss and sk.window_clamp + advmss > maxwin:
        sk.window_clamp = max(2 * advmss, maxwin - advmss)
    sk.rcv_ssthresh = min(sk.rcv_ssthresh, sk.window_clamp)
    sk.snd_cwnd_stamp = sk.net.clock.now
    sk.rcvq_space.space = min(sk.rcv_ssthresh, sk.rcv_wnd, TCP_INIT_CWND * advmss)


def tcp_rcv_synsent_state_process(sk: TcpSock, cb: TcpCb) -> DropReason | int:
    """SYN_SENT: the SYN-ACK (or a crossed SYN). A bad ACK is answered with a
    RST (TCP_INVALID_ACK_SEQUENCE), an acceptable RST resets (connect()
    fails with ECONNREFUSED)."""
    net = sk.net
    rx_opt = sk.rx_opt
    saved_clamp = rx_opt.mss_clamp
    tcp_parse_options(net, cb, rx_opt, False)
    if rx_opt.saw_tstamp and rx_opt.rcv_tsecr:
        rx_opt.rcv_tsecr = (rx_opt.rcv_tsecr - sk.tsoffset) & 0xFFFFFFFF
    flags = cb.tcp_flags
    if flags & TCPHDR_ACK:
        if not after(cb.ack_seq, sk.snd_una) or after(cb.ack_seq, sk.snd_nxt):
            rx_opt.mss_clamp = saved_clamp
            return DropReason.TCP_INVALID_ACK_SEQUENCE
        if rx_opt.saw_tstamp and rx_opt.rcv_tsecr and not between(
                rx_opt.rcv_tsecr, int(sk.retrans_stamp * 1000) & 0xFFFFFFFF, tcp_clock_ms(net)):
            net.mib.net_statistics[LINUX_MIB_PAWSACTIVEREJECTED] += 1
            rx_opt.mss_clamp = saved_clamp
            return DropReason.TCP_RFC7323_PAWS
        if flags & TCPHDR_RST:
            net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "RESET", "tcp_reset")
            tcp_reset(sk)
            return 0
        if not flags & TCPHDR_SYN:
            rx_opt.mss_clamp = saved_clamp
            kfree_skb(cb.skb, DropReason.TCP_FLAGS, Stage.SOCKET, "tcp_rcv_synsent_state_process")
            return 0
        tcp_init_wl(sk, cb.seq)
        tcp_ack(sk, cb, FLAG_SLOWPATH)
        sk.rcv_nxt = sk.rcv_wup = (cb.seq + 1) & 0xFFFFFFFF
        sk.snd_wnd = cb.window
        if not rx_opt.wscale_ok:
            rx_opt.snd_wscale = rx_opt.rcv_wscale = 0
            sk.window_clamp = min(sk.window_clamp, 65535)
        if rx_opt.saw_tstamp:
            rx_opt.tstamp_ok = True
            sk.tcp_header_len = 20 + wire_tcp.TCPOLEN_TSTAMP_ALIGNED
            sk.advmss -= wire_tcp.TCPOLEN_TSTAMP_ALIGNED
            tcp_store_ts_recent(sk)
        else:
            sk.tcp_header_len = 20
        tcp_output.tcp_sync_mss(sk, sk.icsk_pmtu_cookie)
        tcp_output.tcp_initialize_rcv_mss(sk)
        sk.copied_seq = sk.rcv_nxt
        tcp_finish_connect(sk)
        net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "ESTABLISHED", "tcp_finish_connect")
        if sk.icsk_ack.pingpong >= net.sysctl.values["net.ipv4.tcp_pingpong_thresh"]:
            inet_csk_schedule_ack(sk)
            tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
            tcp_output.tcp_send_delayed_ack(sk)
            return 0
        tcp_output.tcp_send_ack(sk)
        return 0
    if flags & TCPHDR_RST:
        kfree_skb(cb.skb, DropReason.TCP_RESET, Stage.SOCKET, "tcp_rcv_synsent_state_process")
        return 0
    if rx_opt.ts_recent_stamp and rx_opt.saw_tstamp and tcp_paws_reject(rx_opt, False, net.clock.now):
        kfree_skb(cb.skb, DropReason.TCP_RFC7323_PAWS, Stage.SOCKET, "tcp_rcv_synsent_state_process")
        return 0
    if flags & TCPHDR_SYN:
        # crossed SYNs: simultaneous open
        tcp_set_state(sk, TCP_SYN_RECV)
        if rx_opt.saw_tstamp:
            rx_opt.tstamp_ok = True
            tcp_store_ts_recent(sk)
            sk.tcp_header_len = 20 + wire_tcp.TCPOLEN_TSTAMP_ALIGNED
        else:
            sk.tcp_header_len = 20
        sk.rcv_nxt = sk.copied_seq = sk.rcv_wup = (cb.seq + 1) & 0xFFFFFFFF
        sk.snd_wnd = sk.max_window = cb.window
        sk.snd_wl1 = cb.seq
        tcp_output.tcp_sync_mss(sk, sk.icsk_pmtu_cookie)
        tcp_output.tcp_initialize_rcv_mss(sk)
        net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "SYN_RECV", "simultaneous open")
        tcp_output.tcp_send_synack(sk)
        return 0
    rx_opt.mss_clamp = saved_clamp
    kfree_skb(cb.skb, DropReason.NOT_SPECIFIED, Stage.SOCKET, "tcp_rcv_synsent_state_process")
    return 0


def tcp_rcv_state_process(sk: TcpSock, cb: TcpCb) -> DropReason | None:
    """Every state but LISTEN (tcp_ipv4.py), ESTABLISHED and TIME_WAIT. A
    DropReason returned asks the caller for a RST (tcp_v4_do_rcv())."""
    net = sk.net
    state = sk.state
    flags = cb.tcp_flags
    if state == TCP_CLOSE:
        kfree_skb(cb.skb, DropReason.TCP_CLOSE, Stage.SOCKET, "tcp_rcv_state_process")
        return None
    if state == TCP_SYN_SENT:
        sk.rx_opt.saw_tstamp = False
        answer = tcp_rcv_synsent_state_process(sk, cb)
        if isinstance(answer, DropReason):
            return answer
        tcp_data_snd_check(sk)
        return None
    tcp_parse_options(net, cb, sk.rx_opt, True)
    if sk.rx_opt.saw_tstamp and sk.rx_opt.rcv_tsecr:
        sk.rx_opt.rcv_tsecr = (sk.rx_opt.rcv_tsecr - sk.tsoffset) & 0xFFFFFFFF
    if not flags & (TCPHDR_ACK | TCPHDR_RST | TCPHDR_SYN):
        kfree_skb(cb.skb, DropReason.TCP_FLAGS, Stage.SOCKET, "tcp_rcv_state_process")
        return None
    if not tcp_validate_incoming(sk, cb, False):
        return None
    answer = tcp_ack(sk, cb, FLAG_SLOWPATH | FLAG_UPDATE_TS_RECENT | FLAG_NO_CHALLENGE_ACK)
    if answer == 0 or isinstance(answer, DropReason):
        if sk.state == TCP_SYN_RECV:
            return DropReason.TCP_OLD_ACK if answer == 0 else answer
        if isinstance(answer, DropReason):
            tcp_send_challenge_ack(sk)
            kfree_skb(cb.skb, answer, Stage.SOCKET, "tcp_rcv_state_process")
            return None
    state = sk.state
    if state == TCP_SYN_RECV:
        sk.delivered += 1
        if sk.rx_opt.tstamp_ok:
            sk.advmss -= wire_tcp.TCPOLEN_TSTAMP_ALIGNED
        sk.retrans_stamp = 0.0
        tcp_init_transfer(sk)
        sk.copied_seq = sk.rcv_nxt
        tcp_set_state(sk, TCP_ESTABLISHED)
        sk.snd_una = cb.ack_seq
        sk.snd_wnd = cb.window << sk.rx_opt.snd_wscale
        tcp_init_wl(sk, cb.seq)
        sk.lsndtime = net.clock.now
        tcp_output.tcp_initialize_rcv_mss(sk)
        tcp_fast_path_on(sk)
        net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "ESTABLISHED", "tcp_rcv_state_process")
        if sk.shutdown & SEND_SHUTDOWN and tcp_close_state(sk):
            tcp_output.tcp_send_fin(sk)  # shutdown(SHUT_WR) while the handshake ran
    elif state == TCP_FIN_WAIT1:
        if sk.snd_una == sk.write_seq:
            tcp_set_state(sk, TCP_FIN_WAIT2)
            sk.shutdown |= SEND_SHUTDOWN
            if sk.done:
                data_past_fin = cb.end_seq != cb.seq and after(
                    (cb.end_seq - bool(flags & TCPHDR_FIN)) & 0xFFFFFFFF, sk.rcv_nxt)
                if sk.linger2 < 0 or data_past_fin:  # TCP_LINGER2 -1, or data after close(): reset
                    tcp_done(sk)
                    net.mib.net_statistics[LINUX_MIB_TCPABORTONDATA] += 1
                    return DropReason.TCP_ABORT_ON_DATA
                tmo = tcp_fin_time(sk)
                if tmo > TCP_TIMEWAIT_LEN:
                    sk.sk_timer.mod_timer(net.clock.now + tmo - TCP_TIMEWAIT_LEN)  # tcp_fin_wait2_timeout()
                elif flags & TCPHDR_FIN:
                    sk.sk_timer.mod_timer(net.clock.now + tmo)
                else:
                    tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)
                    return None
    elif state == TCP_CLOSING:
        if sk.snd_una == sk.write_seq:
            tcp_time_wait(sk, TCP_TIME_WAIT, 0)
            return None
    elif state == TCP_LAST_ACK:
        if sk.snd_una == sk.write_seq:
            net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {sk.sport}", "CLOSED", "LAST_ACK acknowledged")
            tcp_done(sk)
            return None
    state = sk.state
    if state in (TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK) and not before(cb.seq, sk.rcv_nxt):
        # the peer's FIN came: nothing more of the text is taken
        kfree_skb(cb.skb, DropReason.NOT_SPECIFIED, Stage.SOCKET, "tcp_rcv_state_process")
    elif state != TCP_SYN_RECV:
        if state != TCP_ESTABLISHED and sk.shutdown & RCV_SHUTDOWN and cb.end_seq != cb.seq and after(
                (cb.end_seq - bool(flags & TCPHDR_FIN)) & 0xFFFFFFFF, sk.rcv_nxt):
            net.mib.net_statistics[LINUX_MIB_TCPABORTONDATA] += 1
            tcp_reset(sk)
            return DropReason.TCP_ABORT_ON_DATA  # RFC 1122: data after close() is answered with a RST
        tcp_data_queue(sk, cb)
    if sk.state != TCP_CLOSE:
        tcp_data_snd_check(sk)
        tcp_ack_snd_check(sk)
    return None
