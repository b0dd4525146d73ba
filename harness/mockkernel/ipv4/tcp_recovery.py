"""The sender's half of ACK processing (net/ipv4/tcp_input.c, tcp_recovery.c).

What tcp_ack() does once it has validated the ACK and moved snd_una and the
window (tcp_input.py, A1's): tcp_sacktag_write_queue() marks SACKed segments
(a first block below snd_una, or inside the second, is a D-SACK);
tcp_clean_rtx_queue() frees what snd_una covers and takes an RTT sample from
the newest segment that was never retransmitted (Karn), else from the
timestamp echo; tcp_rtt_estimator() and tcp_set_rto() are RFC 6298 as Linux
keeps it (srtt << 3, mdev, rttvar at least the minimum RTO, RTO =
srtt + 4 * rttvar rounded up to a jiffy); tcp_fastretrans_alert() runs the
congestion state machine (Open, Disorder, CWR, Recovery, Loss) with RACK
(tcp_recovery 1: a segment is lost once a later-sent one was delivered and
an RTT plus the reordering window passed; the window is 0 once tcp_reordering
segments were SACKed, so three duplicate SACKs start recovery at once) and, for
a connection without SACK, NewReno's three duplicate ACKs; proportional rate
reduction (tcp_cwnd_reduction()) in Recovery; F-RTO (tcp_frto 2) and undo
after an RTO; tcp_cong_control() grows cwnd through the congestion module.
Left out: the rate sampler beyond delivered counts, ECN, MTU probes, SACK
blocks that cut a segment (a block's edges inside a segment SACK nothing of it),
the reordering window's D-SACK steps.
"""
from __future__ import annotations

from harness.mockkernel.core.snmp import LINUX_MIB
from harness.mockkernel.ipv4.tcp_cong import (CA_EVENT_COMPLETE_CWR, CA_EVENT_LOSS, TCP_CA_CWR, TCP_CA_Disorder,
                                              TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery, tcp_ca_event,
                                              tcp_set_ca_state)
from harness.mockkernel.ipv4.tcp_output import (HZ, ICSK_TIME_PROBE0, ICSK_TIME_REO_TIMEOUT, ICSK_TIME_RETRANS,
                                                TCP_NAGLE_OFF, __tcp_push_pending_frames, inet_csk_clear_xmit_timer,
                                                inet_csk_reset_xmit_timer, tcp_current_mss, tcp_packets_in_flight,
                                                tcp_probe0_when, tcp_rearm_rto, tcp_rto_max, tcp_schedule_loss_probe,
                                                tcp_wnd_end, tcp_xmit_retransmit_queue, usecs_to_jiffies)
from harness.mockkernel.ipv4.tcp_sock import (TCP_SYN_SENT, TCPCB_EVER_RETRANS, TCPCB_LOST, TCPCB_SACKED_ACKED,
                                              TCPCB_SACKED_RETRANS, after, before, between)
from harness.mockkernel.wire.tcp import TCPHDR_SYN

# tcp_input.c's FLAG_* bits of one ACK
FLAG_DATA = 0x01  # the segment carried data
FLAG_WIN_UPDATE = 0x02
FLAG_DATA_ACKED = 0x04
FLAG_RETRANS_DATA_ACKED = 0x08
FLAG_SYN_ACKED = 0x10
FLAG_DATA_SACKED = 0x20
FLAG_ECE = 0x40
FLAG_LOST_RETRANS = 0x80
FLAG_SLOWPATH = 0x100
FLAG_ORIG_SACK_ACKED = 0x200
FLAG_SND_UNA_ADVANCED = 0x400
FLAG_DSACKING_ACK = 0x800
FLAG_SET_XMIT_TIMER = 0x1000
FLAG_SACK_RENEGING = 0x2000
FLAG_UPDATE_TS_RECENT = 0x4000
FLAG_NO_CHALLENGE_ACK = 0x8000
FLAG_ACKED = FLAG_DATA_ACKED | FLAG_SYN_ACKED
FLAG_NOT_DUP = FLAG_DATA | FLAG_WIN_UPDATE | FLAG_ACKED
FLAG_CA_ALERT = FLAG_DATA_SACKED | FLAG_ECE | FLAG_DSACKING_ACK
FLAG_FORWARD_PROGRESS = FLAG_ACKED | FLAG_DATA_SACKED
TCPCB_RETRANS = TCPCB_SACKED_RETRANS | TCPCB_EVER_RETRANS
REXMIT_NONE, REXMIT_LOST, REXMIT_NEW = 0, 1, 2
TCP_RACK_LOSS_DETECTION, TCP_RACK_NO_DUPTHRESH = 0x1, 0x4
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
TCP_MIN_RTT_WLEN = 300.0  # tcp_min_rtt_wlen, seconds
TCP_TIMEOUT_MIN = 2 / HZ


def _now_us(sk) -> int:
    return int(sk.net.clock.now * 1_000_000)


def _stamp_us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def tcp_is_sack(sk) -> bool:
    return sk.rx_opt.sack_ok


def tcp_is_rack(sk) -> bool:
    return bool(sk.net.sysctl.values["net.ipv4.tcp_recovery"] & TCP_RACK_LOSS_DETECTION)


def tcp_left_out(sk) -> int:
    return sk.sacked_out + sk.lost_out


def tcp_highest_sack_seq(sk) -> int:
    """The end of the highest SACKed segment (snd_una with nothing SACKed)."""
    if not sk.sacked_out:
        return sk.snd_una
    return sk.snd_nxt if sk.highest_sack is None else sk.highest_sack


def tcp_min_rtt(sk) -> int:
    return sk.rtt_min


# --- RTT and RTO

def tcp_rtt_estimator(sk, mrtt_us: int) -> None:
    """Jacobson/Karels as tcp_input.c keeps it: srtt_us holds 8 * srtt,
    mdev_us 4 * mdev; rttvar_us follows the largest mdev of the last window
    and is at least the minimum RTO."""
    m = mrtt_us
    srtt = sk.srtt_us
    rto_min_us = sk.net.sysctl.values["net.ipv4.tcp_rto_min_us"]
    if srtt:
        m -= srtt >> 3
        srtt += m
        if m < 0:
            m = -m - (sk.mdev_us >> 2)
            if m > 0:
                m >>= 3
        else:
            m -= sk.mdev_us >> 2
        sk.mdev_us += m
        if sk.mdev_us > sk.mdev_max_us:
            sk.mdev_max_us = sk.mdev_us
            if sk.mdev_max_us > sk.rttvar_us:
                sk.rttvar_us = sk.mdev_max_us
        if after(sk.snd_una, sk.rtt_seq):
            if sk.mdev_max_us < sk.rttvar_us:
                sk.rttvar_us -= (sk.rttvar_us - sk.mdev_max_us) >> 2
            sk.rtt_seq = sk.snd_nxt
            sk.mdev_max_us = rto_min_us
    else:
        srtt = m << 3
        sk.mdev_us = m << 1
        sk.rttvar_us = max(sk.mdev_us, rto_min_us)
        sk.mdev_max_us = sk.rttvar_us
        sk.rtt_seq = sk.snd_nxt
    sk.srtt_us = max(1, srtt)


def tcp_set_rto(sk) -> None:
    """RTO = srtt + 4 * mdev (rttvar_us holds the 4), in whole jiffies, at most tcp_rto_max_ms."""
    sk.rto = min(usecs_to_jiffies((sk.srtt_us >> 3) + sk.rttvar_us), tcp_rto_max(sk))


def tcp_update_rtt_min(sk, rtt_us: int) -> None:
    """The windowed minimum RTT (tcp_min_rtt_wlen, 300 s)."""
    now = sk.net.clock.now
    if rtt_us <= sk.rtt_min or now - sk.rtt_min_stamp > TCP_MIN_RTT_WLEN:
        sk.rtt_min = max(rtt_us, 1)
        sk.rtt_min_stamp = now


def tcp_rtt_tsopt_us(sk) -> int:
    """The RTT the timestamp echo gives (rcv_tsecr, our offset taken off), at least 1 ms."""
    delta = (int(sk.net.clock.now * 1000) - sk.rx_opt.rcv_tsecr) & 0xFFFFFFFF
    if delta >= 0x7FFFFFFF // 1000:
        return -1
    return (delta or 1) * 1000


def tcp_ack_update_rtt(sk, flag: int, seq_rtt_us: int, sack_rtt_us: int, ca_rtt_us: int) -> tuple[bool, int]:
    """Take an RTT sample: the ACK's timing first, the timestamp echo when
    Karn forbids that and the ACK covered new data. Returns whether one was
    taken and the congestion module's sample (-1: none)."""
    if seq_rtt_us < 0:
        seq_rtt_us = sack_rtt_us
    if seq_rtt_us < 0 and sk.rx_opt.saw_tstamp and sk.rx_opt.rcv_tsecr and flag & FLAG_ACKED:
        seq_rtt_us = ca_rtt_us = tcp_rtt_tsopt_us(sk)
    if seq_rtt_us < 0:
        return False, ca_rtt_us
    tcp_update_rtt_min(sk, ca_rtt_us)
    tcp_rtt_estimator(sk, seq_rtt_us)
    tcp_set_rto(sk)
    sk.backoff = 0  # RFC 6298: only a valid sample resets the backoff
    return True, ca_rtt_us


def tcp_synack_rtt_meas(sk, req) -> None:
    """The passive side's first sample: SYN-ACK to the ACK that completed the
    handshake, unless the SYN-ACK was retransmitted."""
    rtt_us = -1
    if not req.num_retrans and req.snt_synack is not None:
        rtt_us = _now_us(sk) - _stamp_us(req.snt_synack)
    tcp_ack_update_rtt(sk, FLAG_SYN_ACKED, rtt_us, -1, rtt_us)


# --- marking segments SACKed and lost

def tcp_notify_skb_loss_event(sk, skb) -> None:
    sk.lost += 1


def tcp_mark_skb_lost(sk, skb) -> None:
    sacked = skb.sacked
    if sacked & TCPCB_SACKED_ACKED:
        return
    if sacked & TCPCB_LOST:
        if sacked & TCPCB_SACKED_RETRANS:
            skb.sacked &= ~TCPCB_SACKED_RETRANS  # a retransmission lost again
            sk.retrans_out -= 1
            sk.net.mib.net_statistics[LINUX_MIB["TCPLostRetransmit"]] += 1
            tcp_notify_skb_loss_event(sk, skb)
    else:
        sk.lost_out += 1
        skb.sacked |= TCPCB_LOST
        tcp_notify_skb_loss_event(sk, skb)


def tcp_skb_sent_after(t1: float, t2: float, seq1: int, seq2: int) -> bool:
    return t1 > t2 or (t1 == t2 and after(seq1, seq2))


def tcp_rack_advance(sk, sacked: int, end_seq: int, xmit_time: float) -> None:
    """RACK remembers the most recently sent segment that was delivered."""
    rtt_us = _now_us(sk) - _stamp_us(xmit_time)
    if rtt_us < tcp_min_rtt(sk) and sacked & TCPCB_RETRANS:
        return  # ambiguous: the original may have been the one delivered
    rack = sk.rack
    rack.advanced = True
    rack.rtt_us = rtt_us
    if tcp_skb_sent_after(xmit_time, rack.mstamp, end_seq, rack.end_seq):
        rack.mstamp = xmit_time
        rack.end_seq = end_seq


def tcp_check_sack_reordering(sk, low_seq: int, ts: bool) -> None:
    """A hole below what was SACKed filled with an original: the degree of reordering."""
    mss = sk.mss_cache
    fack = tcp_highest_sack_seq(sk)
    if not before(low_seq, fack):
        return
    metric = (fack - low_seq) & 0xFFFFFFFF
    if mss and metric > sk.reordering * mss:
        sk.reordering = min((metric + mss - 1) // mss, sk.net.sysctl.values["net.ipv4.tcp_max_reordering"])
    sk.reord_seen += 1
    sk.net.mib.net_statistics[LINUX_MIB["TCPTSReorder" if ts else "TCPSACKReorder"]] += 1


class SackState:
    """struct tcp_sacktag_state: what one ACK's SACK blocks did."""

    __slots__ = ("first_sackt", "last_sackt", "reord", "sack_delivered", "flag", "newest_delivered")

    def __init__(self) -> None:
        self.first_sackt = self.last_sackt = None  # send times of the first and last newly SACKed originals
        self.newest_delivered = None  # the delivered segment sent last (tcp_rate_skb_delivered())
        self.reord = None
        self.sack_delivered = 0
        self.flag = 0


def tcp_check_dsack(sk, blocks, prior_snd_una: int) -> bool:
    """A first block below the cumulative ACK, or inside the second, reports a duplicate."""
    start0, end0 = blocks[0]
    dup = before(start0, sk.snd_una if not after(sk.snd_una, prior_snd_una) else prior_snd_una) or (
        len(blocks) > 1 and not after(end0, blocks[1][1]) and not before(start0, blocks[1][0]))
    if not dup:
        return False
    sk.dsack_dups += 1
    sk.net.mib.net_statistics[LINUX_MIB["TCPDSACKRecv" if not after(end0, prior_snd_una) else "TCPDSACKOfoRecv"]] += 1
    if sk.undo_marker and sk.undo_retrans > 0 and not after(end0, prior_snd_una) and after(end0, sk.undo_marker):
        sk.undo_retrans -= 1  # one retransmission proven unnecessary
    return True


def tcp_sacktag_write_queue(sk, blocks, prior_snd_una: int, state: SackState | None = None) -> int:
    """Mark the segments the SACK blocks cover; the FLAG_* bits learnt.
    `blocks` are (start, end) pairs as the option carries them."""
    state = state if state is not None else SackState()
    if not blocks or not sk.packets_out:
        return 0
    flag = 0
    blocks = [(start & 0xFFFFFFFF, end & 0xFFFFFFFF) for start, end in blocks]
    if tcp_check_dsack(sk, blocks, prior_snd_una):
        flag |= FLAG_DSACKING_ACK
        blocks = blocks[1:]
    prior_fack = tcp_highest_sack_seq(sk)
    valid = [(start, end) for start, end in blocks
             if before(start, end) and not after(end, sk.snd_nxt) and not before(start, sk.snd_una)]
    if not valid:
        return flag
    for skb in sk.rtx_queue:
        if skb.sacked & TCPCB_SACKED_ACKED:
            continue
        if not any(not before(skb.seq, start) and not after(skb.end_seq, end) for start, end in valid):
            continue
        sacked = skb.sacked
        if sacked & TCPCB_SACKED_RETRANS:
            skb.sacked &= ~TCPCB_SACKED_RETRANS
            sk.retrans_out -= 1
        elif not sacked & TCPCB_RETRANS:
            if before(skb.seq, prior_fack):  # a never-resent hole below what was SACKed: reordering
                state.reord = skb.seq if state.reord is None or before(skb.seq, state.reord) else state.reord
            if not after(skb.end_seq, sk.high_seq):
                flag |= FLAG_ORIG_SACK_ACKED
            if state.first_sackt is None:
                state.first_sackt = skb.skb_mstamp
            state.last_sackt = skb.skb_mstamp
        if sacked & TCPCB_LOST:
            skb.sacked &= ~TCPCB_LOST
            sk.lost_out -= 1
        tcp_rack_advance(sk, sacked, skb.end_seq, skb.skb_mstamp)
        skb.sacked |= TCPCB_SACKED_ACKED
        _delivered(state, skb)
        flag |= FLAG_DATA_SACKED
        sk.sacked_out += 1
        sk.delivered += 1
        state.sack_delivered += 1
        if sk.highest_sack is None or after(skb.end_seq, sk.highest_sack) or not sk.sacked_out - 1:
            sk.highest_sack = skb.end_seq
    if state.reord is not None:
        tcp_check_sack_reordering(sk, state.reord, False)
    state.flag |= flag
    return flag


def _delivered(state: SackState, skb) -> None:
    newest = state.newest_delivered
    if newest is None or skb.skb_mstamp >= newest.skb_mstamp:
        state.newest_delivered = skb


# --- cleaning the retransmission queue

def tcp_clean_rtx_queue(sk, prior_fack: int, prior_snd_una: int, state: SackState | None = None) -> tuple[int, int]:
    """Free the segments snd_una covers; (FLAG_* bits, the RTT sample for the congestion module)."""
    state = state if state is not None else SackState()
    reord = sk.snd_nxt
    first_ackt = last_ackt = None
    flag = 0
    pkts_acked = 0
    queue = sk.rtx_queue
    snd_una = sk.snd_una
    is_sack = tcp_is_sack(sk)
    while queue:
        skb = queue[0]
        if after(skb.end_seq, snd_una):
            break
        sacked = skb.sacked
        if sacked & TCPCB_RETRANS:
            if sacked & TCPCB_SACKED_RETRANS:
                sk.retrans_out -= 1
            flag |= FLAG_RETRANS_DATA_ACKED
        elif not sacked & TCPCB_SACKED_ACKED:
            last_ackt = skb.skb_mstamp
            if first_ackt is None:
                first_ackt = last_ackt
            if before(skb.seq, reord):
                reord = skb.seq
            if not after(skb.end_seq, sk.high_seq):
                flag |= FLAG_ORIG_SACK_ACKED
        if sacked & TCPCB_SACKED_ACKED:
            sk.sacked_out -= 1
        else:
            _delivered(state, skb)
            if is_sack:
                sk.delivered += 1
                if not tcp_skb_spurious_retrans(sk, skb):
                    tcp_rack_advance(sk, sacked, skb.end_seq, skb.skb_mstamp)
        if sacked & TCPCB_LOST:
            sk.lost_out -= 1
        sk.packets_out -= 1
        pkts_acked += 1
        if skb.tcp_flags & TCPHDR_SYN:
            flag |= FLAG_SYN_ACKED
            sk.retrans_stamp = 0.0
        else:
            flag |= FLAG_DATA_ACKED
        sk.sk_wmem_queued -= skb.truesize
        queue.popleft()
    if between(sk.snd_up, prior_snd_una, sk.snd_una):
        sk.snd_up = sk.snd_una
    if queue and queue[0].sacked & TCPCB_SACKED_ACKED:
        flag |= FLAG_SACK_RENEGING
    now_us = _now_us(sk)
    seq_rtt_us = sack_rtt_us = ca_rtt_us = -1
    if first_ackt is not None and not flag & FLAG_RETRANS_DATA_ACKED:
        seq_rtt_us = now_us - _stamp_us(first_ackt)
        ca_rtt_us = now_us - _stamp_us(last_ackt)
    if state.first_sackt is not None:
        sack_rtt_us = now_us - _stamp_us(state.first_sackt)
        ca_rtt_us = now_us - _stamp_us(state.last_sackt)
    rtt_updated, rtt_sample = tcp_ack_update_rtt(sk, flag, seq_rtt_us, sack_rtt_us, ca_rtt_us)
    if flag & FLAG_ACKED:
        flag |= FLAG_SET_XMIT_TIMER
        if not is_sack:
            tcp_remove_reno_sacks(sk, pkts_acked)
            if flag & FLAG_RETRANS_DATA_ACKED:
                flag &= ~FLAG_ORIG_SACK_ACKED
        elif before(reord, prior_fack):
            tcp_check_sack_reordering(sk, reord, False)
    elif queue and rtt_updated and sack_rtt_us >= 0 and sack_rtt_us > now_us - _stamp_us(queue[0].skb_mstamp):
        flag |= FLAG_SET_XMIT_TIMER  # the SACK RTT comes from data sent after the head's last send
    pkts_acked_hook = sk.icsk_ca_ops.pkts_acked
    if pkts_acked_hook is not None:
        pkts_acked_hook(sk, pkts_acked, rtt_sample)
    return flag, rtt_sample


def tcp_skb_spurious_retrans(sk, skb) -> bool:
    """A retransmitted segment whose ACK echoes a timestamp older than the retransmission."""
    return bool(skb.sacked & TCPCB_RETRANS and sk.rx_opt.saw_tstamp and sk.rx_opt.rcv_tsecr and
                before(sk.rx_opt.rcv_tsecr, int(skb.skb_mstamp * 1000) & 0xFFFFFFFF))


# --- NewReno's emulated SACKs for a connection without SACK

def tcp_limit_reno_sacked(sk) -> bool:
    holes = min(max(sk.lost_out, 1), sk.packets_out)
    if sk.sacked_out + holes > sk.packets_out:
        sk.sacked_out = sk.packets_out - holes
        return True
    return False


def tcp_check_reno_reordering(sk, addend: int) -> None:
    if not tcp_limit_reno_sacked(sk):
        return
    sk.reordering = min(sk.packets_out + addend, sk.net.sysctl.values["net.ipv4.tcp_max_reordering"])
    sk.reord_seen += 1
    sk.net.mib.net_statistics[LINUX_MIB["TCPRenoReorder"]] += 1


def tcp_add_reno_sack(sk, num_dupack: int) -> None:
    """Each duplicate ACK stands for one segment that arrived."""
    if not num_dupack:
        return
    prior_sacked = sk.sacked_out
    sk.sacked_out += num_dupack
    tcp_check_reno_reordering(sk, 0)
    delivered = sk.sacked_out - prior_sacked
    if delivered > 0:
        sk.delivered += delivered


def tcp_remove_reno_sacks(sk, acked: int) -> None:
    if acked > 0:
        sk.delivered += max(acked - sk.sacked_out, 1)  # one ACK filled the hole, the rest ate dupacks
        sk.sacked_out = 0 if acked - 1 >= sk.sacked_out else sk.sacked_out - (acked - 1)
    tcp_check_reno_reordering(sk, acked)


def tcp_newreno_mark_lost(sk, snd_una_advanced: bool) -> None:
    """The head is lost after tcp_reordering duplicate ACKs, or on a partial ACK in recovery."""
    state = sk.icsk_ca_state
    if (state < TCP_CA_Recovery and sk.sacked_out >= sk.reordering) or \
            (state == TCP_CA_Recovery and snd_una_advanced):
        head = sk.rtx_queue[0]
        if not head.sacked & TCPCB_LOST:
            tcp_mark_skb_lost(sk, head)


# --- RACK (tcp_recovery.c)

def tcp_rack_reo_wnd(sk) -> int:
    """0 in recovery or once tcp_reordering segments were SACKed with no
    reordering seen; else a quarter of the minimum RTT."""
    if not sk.reord_seen:
        if sk.icsk_ca_state >= TCP_CA_Recovery:
            return 0
        if sk.sacked_out >= sk.reordering and \
                not sk.net.sysctl.values["net.ipv4.tcp_recovery"] & TCP_RACK_NO_DUPTHRESH:
            return 0
    return min((tcp_min_rtt(sk) >> 2) * sk.rack.reo_wnd_steps, sk.srtt_us >> 3)


def tcp_rack_skb_timeout(sk, skb, reo_wnd: int) -> int:
    return sk.rack.rtt_us + reo_wnd - (_now_us(sk) - _stamp_us(skb.skb_mstamp))


def tcp_rack_detect_loss(sk) -> int:
    """Mark lost what was sent before the last delivered segment and has had
    its RTT plus the reordering window; the longest wait of the others (us)."""
    reo_timeout = 0
    reo_wnd = tcp_rack_reo_wnd(sk)
    rack = sk.rack
    for skb in sorted(sk.rtx_queue, key=_sent_order):
        sacked = skb.sacked
        if sacked & TCPCB_SACKED_ACKED or (sacked & TCPCB_LOST and not sacked & TCPCB_SACKED_RETRANS):
            continue
        if not tcp_skb_sent_after(rack.mstamp, skb.skb_mstamp, rack.end_seq, skb.end_seq):
            break
        remaining = tcp_rack_skb_timeout(sk, skb, reo_wnd)
        if remaining <= 0:
            tcp_mark_skb_lost(sk, skb)
        else:
            reo_timeout = max(reo_timeout, remaining)
    return reo_timeout


def _sent_order(skb) -> tuple[float, int]:
    return skb.skb_mstamp, skb.seq


def tcp_rack_mark_lost(sk) -> bool:
    """Run RACK after an ACK that delivered something; arm the reordering timer if some must wait."""
    rack = sk.rack
    if not rack.advanced:
        return False
    rack.advanced = False
    timeout = tcp_rack_detect_loss(sk)
    if timeout:
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_REO_TIMEOUT, usecs_to_jiffies(timeout) + TCP_TIMEOUT_MIN, sk.rto)
    return bool(timeout)


def tcp_rack_reo_timeout(sk) -> None:
    """The reordering timer: what RACK now finds lost is retransmitted, entering recovery."""
    lost = sk.lost
    prior_inflight = tcp_packets_in_flight(sk)
    tcp_rack_detect_loss(sk)
    if prior_inflight != tcp_packets_in_flight(sk):
        if sk.icsk_ca_state != TCP_CA_Recovery:
            tcp_enter_recovery(sk, False)
            tcp_cwnd_reduction(sk, 1, sk.lost - lost, 0)
        tcp_xmit_retransmit_queue(sk)
    if sk.icsk_pending != ICSK_TIME_RETRANS:
        tcp_rearm_rto(sk)


def tcp_identify_packet_loss(sk, ack_flag: int) -> int:
    if not sk.rtx_queue:
        return ack_flag
    if not tcp_is_sack(sk):
        tcp_newreno_mark_lost(sk, bool(ack_flag & FLAG_SND_UNA_ADVANCED))
    elif tcp_is_rack(sk):
        prior_retrans = sk.retrans_out
        if tcp_rack_mark_lost(sk):
            ack_flag &= ~FLAG_SET_XMIT_TIMER
        if prior_retrans > sk.retrans_out:
            ack_flag |= FLAG_LOST_RETRANS
    return ack_flag


# --- the congestion state machine

def tcp_any_retrans_done(sk) -> bool:
    if sk.retrans_out:
        return True
    return bool(sk.rtx_queue and sk.rtx_queue[0].sacked & TCPCB_EVER_RETRANS)


def tcp_current_ssthresh(sk) -> int:
    if sk.icsk_ca_state in (TCP_CA_CWR, TCP_CA_Recovery):
        return sk.snd_ssthresh
    return max(sk.snd_ssthresh, (sk.snd_cwnd >> 1) + (sk.snd_cwnd >> 2))


def tcp_simple_retransmit(sk) -> None:
    """net/ipv4/tcp_input.c tcp_simple_retransmit(): after the path MTU
    dropped, every queued segment longer than the MSS now is lost and goes
    again (cut to it); cwnd stays, as the data in flight did not grow: Loss
    state with ssthresh kept and no undo."""
    mss = tcp_current_mss(sk)
    for skb in sk.rtx_queue:
        if len(skb.data) > mss:
            tcp_mark_skb_lost(sk, skb)
    if not sk.lost_out:
        return
    if not tcp_is_sack(sk):
        tcp_limit_reno_sacked(sk)
    if sk.icsk_ca_state != TCP_CA_Loss:
        sk.high_seq = sk.snd_nxt
        sk.snd_ssthresh = tcp_current_ssthresh(sk)
        sk.prior_ssthresh = 0
        sk.undo_marker = 0
        tcp_set_ca_state(sk, TCP_CA_Loss)
    tcp_xmit_retransmit_queue(sk)


def tcp_init_undo(sk) -> None:
    sk.undo_marker = sk.snd_una
    sk.undo_retrans = sk.retrans_out + (1 if sk.tlp_high_seq and sk.tlp_retrans else 0)
    if not sk.undo_retrans:
        sk.undo_retrans = -1


def tcp_init_cwnd_reduction(sk) -> None:
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = 0
    sk.snd_cwnd_cnt = 0
    sk.prior_cwnd = sk.snd_cwnd
    sk.prr_delivered = 0
    sk.prr_out = 0
    sk.snd_ssthresh = sk.icsk_ca_ops.ssthresh(sk)


def tcp_cwnd_reduction(sk, newly_acked_sacked: int, newly_lost: int, flag: int) -> None:
    """Proportional rate reduction (RFC 6937): send as the peer delivers,
    down to ssthresh; a fast retransmit always goes out."""
    if newly_acked_sacked <= 0 or not sk.prior_cwnd:
        return
    delta = sk.snd_ssthresh - tcp_packets_in_flight(sk)
    sk.prr_delivered += newly_acked_sacked
    if delta < 0:
        sndcnt = (sk.snd_ssthresh * sk.prr_delivered + sk.prior_cwnd - 1) // sk.prior_cwnd - sk.prr_out
    else:
        sndcnt = max(sk.prr_delivered - sk.prr_out, newly_acked_sacked)
        if flag & FLAG_SND_UNA_ADVANCED and not newly_lost:
            sndcnt += 1
        sndcnt = min(delta, sndcnt)
    sndcnt = max(sndcnt, 0 if sk.prr_out else 1)
    sk.snd_cwnd = tcp_packets_in_flight(sk) + sndcnt


def tcp_end_cwnd_reduction(sk) -> None:
    if sk.snd_ssthresh < TCP_INFINITE_SSTHRESH and (sk.icsk_ca_state == TCP_CA_CWR or sk.undo_marker):
        sk.snd_cwnd = sk.snd_ssthresh
        sk.snd_cwnd_stamp = sk.net.clock.now
    tcp_ca_event(sk, CA_EVENT_COMPLETE_CWR)


def tcp_enter_cwr(sk) -> None:
    sk.prior_ssthresh = 0
    if sk.icsk_ca_state < TCP_CA_CWR:
        sk.undo_marker = 0
        tcp_init_cwnd_reduction(sk)
        tcp_set_ca_state(sk, TCP_CA_CWR)


def tcp_enter_recovery(sk, ece_ack: bool) -> None:
    sk.net.mib.net_statistics[LINUX_MIB["TCPSackRecovery" if tcp_is_sack(sk) else "TCPRenoRecovery"]] += 1
    sk.prior_ssthresh = 0
    tcp_init_undo(sk)
    if sk.icsk_ca_state not in (TCP_CA_CWR, TCP_CA_Recovery):
        if not ece_ack:
            sk.prior_ssthresh = tcp_current_ssthresh(sk)
        tcp_init_cwnd_reduction(sk)
    tcp_set_ca_state(sk, TCP_CA_Recovery)


def tcp_timeout_mark_lost(sk) -> None:
    """After an RTO: everything not SACKed is lost, but for segments sent
    within the last RTT (RACK's view); SACKs on the head mean the peer reneged."""
    queue = sk.rtx_queue
    if not queue:
        return
    head = queue[0]
    is_reneg = bool(head.sacked & TCPCB_SACKED_ACKED)
    if is_reneg:
        sk.net.mib.net_statistics[LINUX_MIB["TCPSACKReneging"]] += 1
        sk.sacked_out = 0
    elif not tcp_is_sack(sk):
        sk.sacked_out = 0
    for skb in queue:
        if is_reneg:
            skb.sacked &= ~TCPCB_SACKED_ACKED
        elif skb is not head and tcp_rack_skb_timeout(sk, skb, 0) > 0:
            continue
        tcp_mark_skb_lost(sk, skb)


def tcp_enter_loss(sk) -> None:
    """The RTO fired: ssthresh from the module (once per window), cwnd down to
    what is in flight + 1, state Loss, F-RTO armed when allowed."""
    new_recovery = sk.icsk_ca_state < TCP_CA_Recovery
    tcp_timeout_mark_lost(sk)
    if sk.icsk_ca_state <= TCP_CA_Disorder or not after(sk.high_seq, sk.snd_una) or \
            (sk.icsk_ca_state == TCP_CA_Loss and not sk.retransmits):
        sk.prior_ssthresh = tcp_current_ssthresh(sk)
        sk.prior_cwnd = sk.snd_cwnd
        sk.snd_ssthresh = sk.icsk_ca_ops.ssthresh(sk)
        tcp_ca_event(sk, CA_EVENT_LOSS)
        tcp_init_undo(sk)
    sk.snd_cwnd = tcp_packets_in_flight(sk) + 1
    sk.snd_cwnd_cnt = 0
    sk.snd_cwnd_stamp = sk.net.clock.now
    reordering = sk.net.sysctl.values["net.ipv4.tcp_reordering"]
    if sk.icsk_ca_state <= TCP_CA_Disorder and sk.sacked_out >= reordering:
        sk.reordering = min(sk.reordering, reordering)
    tcp_set_ca_state(sk, TCP_CA_Loss)
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = 0
    sk.frto = bool(sk.net.sysctl.values["net.ipv4.tcp_frto"]) and (new_recovery or bool(sk.retransmits))


def tcp_packet_delayed(sk) -> bool:
    """The timestamp echo predates our first retransmission: the original arrived."""
    return bool(sk.retrans_stamp and sk.rx_opt.saw_tstamp and sk.rx_opt.rcv_tsecr and
                before(sk.rx_opt.rcv_tsecr, int(sk.retrans_stamp * 1000) & 0xFFFFFFFF))


def tcp_may_undo(sk) -> bool:
    return bool(sk.undo_marker) and (not sk.undo_retrans or tcp_packet_delayed(sk))


def tcp_undo_cwnd_reduction(sk, unmark_loss: bool) -> None:
    if unmark_loss:
        for skb in sk.rtx_queue:
            skb.sacked &= ~TCPCB_LOST
        sk.lost_out = 0
    if sk.prior_ssthresh:
        sk.snd_cwnd = sk.icsk_ca_ops.undo_cwnd(sk)
        sk.snd_ssthresh = max(sk.snd_ssthresh, sk.prior_ssthresh)
    sk.snd_cwnd_stamp = sk.net.clock.now
    sk.undo_marker = 0
    sk.rack.advanced = True


def tcp_try_keep_open(sk) -> None:
    state = TCP_CA_Disorder if tcp_left_out(sk) or tcp_any_retrans_done(sk) else TCP_CA_Open
    if sk.icsk_ca_state != state:
        tcp_set_ca_state(sk, state)
        sk.high_seq = sk.snd_nxt


def tcp_try_to_open(sk, flag: int) -> None:
    if not tcp_any_retrans_done(sk):
        sk.retrans_stamp = 0.0
    if flag & FLAG_ECE:
        tcp_enter_cwr(sk)
    if sk.icsk_ca_state != TCP_CA_CWR:
        tcp_try_keep_open(sk)


def tcp_try_undo_recovery(sk) -> bool:
    if tcp_may_undo(sk):
        tcp_undo_cwnd_reduction(sk, False)
        sk.net.mib.net_statistics[LINUX_MIB["TCPLossUndo" if sk.icsk_ca_state == TCP_CA_Loss else "TCPFullUndo"]] += 1
    if sk.snd_una == sk.high_seq and not tcp_is_sack(sk):
        if not tcp_any_retrans_done(sk):
            sk.retrans_stamp = 0.0
        return True  # Reno holds the state until something above high_seq is ACKed (RFC 2582)
    tcp_set_ca_state(sk, TCP_CA_Open)
    return False


def tcp_try_undo_dsack(sk) -> bool:
    if sk.undo_marker and not sk.undo_retrans:
        tcp_undo_cwnd_reduction(sk, False)
        sk.net.mib.net_statistics[LINUX_MIB["TCPDSACKUndo"]] += 1
        return True
    return False


def tcp_force_fast_retransmit(sk) -> bool:
    return after(tcp_highest_sack_seq(sk), sk.snd_una + sk.reordering * sk.mss_cache)


def tcp_try_undo_partial(sk, prior_snd_una: int) -> tuple[bool, bool]:
    """(done, do_lost): a partial ACK in recovery that the timestamps prove was the original."""
    if sk.undo_marker and tcp_packet_delayed(sk):
        tcp_check_sack_reordering(sk, prior_snd_una, True)
        if sk.retrans_out:
            return True, False
        if not tcp_any_retrans_done(sk):
            sk.retrans_stamp = 0.0
        tcp_undo_cwnd_reduction(sk, True)
        sk.net.mib.net_statistics[LINUX_MIB["TCPPartialUndo"]] += 1
        tcp_try_keep_open(sk)
        return False, False
    return False, tcp_force_fast_retransmit(sk)


def tcp_try_undo_loss(sk, frto_undo: bool) -> bool:
    if frto_undo or tcp_may_undo(sk):
        tcp_undo_cwnd_reduction(sk, True)
        mib = sk.net.mib.net_statistics
        mib[LINUX_MIB["TCPLossUndo"]] += 1
        if frto_undo:
            mib[LINUX_MIB["TCPSpuriousRTOs"]] += 1
        sk.retransmits = 0
        if frto_undo or tcp_is_sack(sk):
            tcp_set_ca_state(sk, TCP_CA_Open)
        return True
    return False


def tcp_process_loss(sk, flag: int, num_dupack: int) -> int:
    """In Loss after an RTO: undo a spurious timeout (F-RTO, timestamps),
    send new data once the retransmitted head is ACKed (F-RTO step 2b), else
    retransmit what is lost. Returns the REXMIT_* to do."""
    recovered = not before(sk.snd_una, sk.high_seq)
    if flag & FLAG_SND_UNA_ADVANCED and tcp_try_undo_loss(sk, False):
        return REXMIT_NONE
    if sk.frto:
        if flag & FLAG_ORIG_SACK_ACKED and tcp_try_undo_loss(sk, True):
            return REXMIT_NONE
        if after(sk.snd_nxt, sk.high_seq):
            if flag & FLAG_DATA_SACKED or num_dupack:
                sk.frto = False  # step 3a: the loss was real
        elif flag & FLAG_SND_UNA_ADVANCED and not recovered:
            sk.high_seq = sk.snd_nxt
            if sk.write_queue and after(tcp_wnd_end(sk), sk.snd_nxt):
                return REXMIT_NEW
            sk.frto = False
    if recovered:
        tcp_try_undo_recovery(sk)
        return REXMIT_NONE
    if not tcp_is_sack(sk):
        if after(sk.snd_nxt, sk.high_seq) and num_dupack:
            tcp_add_reno_sack(sk, num_dupack)
        elif flag & FLAG_SND_UNA_ADVANCED:
            sk.sacked_out = 0
    return REXMIT_LOST


def tcp_time_to_recover(sk) -> bool:
    if sk.lost_out:
        return True
    return not tcp_is_rack(sk) and sk.sacked_out + 1 > sk.reordering


def tcp_fastretrans_alert(sk, prior_snd_una: int, num_dupack: int, flag: int) -> tuple[int, int]:
    """The state machine on a dubious ACK; (the ACK's flags, REXMIT_*)."""
    if not sk.packets_out and sk.sacked_out:
        sk.sacked_out = 0
    if flag & FLAG_ECE:
        sk.prior_ssthresh = 0
    state = sk.icsk_ca_state
    if state == TCP_CA_Open:
        sk.retrans_stamp = 0.0
    elif not before(sk.snd_una, sk.high_seq):
        if state == TCP_CA_CWR:
            if sk.snd_una != sk.high_seq:
                tcp_end_cwnd_reduction(sk)
                tcp_set_ca_state(sk, TCP_CA_Open)
        elif state == TCP_CA_Recovery:
            if not tcp_is_sack(sk):
                sk.sacked_out = 0
            if tcp_try_undo_recovery(sk):
                return flag, REXMIT_NONE
            tcp_end_cwnd_reduction(sk)
    state = sk.icsk_ca_state
    if state == TCP_CA_Recovery:
        if not flag & FLAG_SND_UNA_ADVANCED:
            if not tcp_is_sack(sk):
                tcp_add_reno_sack(sk, num_dupack)
        else:
            done, _ = tcp_try_undo_partial(sk, prior_snd_una)
            if done:
                return flag, REXMIT_NONE
        if tcp_try_undo_dsack(sk):
            tcp_try_to_open(sk, flag)
        flag = tcp_identify_packet_loss(sk, flag)
        if sk.icsk_ca_state != TCP_CA_Recovery:
            if not tcp_time_to_recover(sk):
                return flag, REXMIT_NONE
            tcp_enter_recovery(sk, bool(flag & FLAG_ECE))
        return flag, REXMIT_LOST
    if state == TCP_CA_Loss:
        rexmit = tcp_process_loss(sk, flag, num_dupack)
        flag = tcp_identify_packet_loss(sk, flag)
        if not (sk.icsk_ca_state == TCP_CA_Open or flag & FLAG_LOST_RETRANS):
            return flag, rexmit
    if not tcp_is_sack(sk):
        if flag & FLAG_SND_UNA_ADVANCED:
            sk.sacked_out = 0
        tcp_add_reno_sack(sk, num_dupack)
    if sk.icsk_ca_state <= TCP_CA_Disorder:
        tcp_try_undo_dsack(sk)
    flag = tcp_identify_packet_loss(sk, flag)
    if not tcp_time_to_recover(sk):
        tcp_try_to_open(sk, flag)
        return flag, REXMIT_NONE
    tcp_enter_recovery(sk, bool(flag & FLAG_ECE))
    return flag, REXMIT_LOST


def tcp_process_tlp_ack(sk, ack: int, flag: int) -> None:
    """The ACK of a tail loss probe: a loss was repaired (cwnd reduced once) or none happened."""
    if before(ack, sk.tlp_high_seq):
        return
    if not sk.tlp_retrans:
        sk.tlp_high_seq = 0
    elif after(ack, sk.tlp_high_seq):
        tcp_init_cwnd_reduction(sk)
        tcp_set_ca_state(sk, TCP_CA_CWR)
        tcp_end_cwnd_reduction(sk)
        tcp_try_keep_open(sk)
        sk.net.mib.net_statistics[LINUX_MIB["TCPLossProbeRecovery"]] += 1
    elif not flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DATA_SACKED):
        sk.tlp_high_seq = 0  # a pure duplicate: original and probe both arrived


# --- tcp_ack()'s tail

def tcp_ack_is_dubious(sk, flag: int) -> bool:
    return not flag & FLAG_NOT_DUP or bool(flag & FLAG_CA_ALERT) or sk.icsk_ca_state != TCP_CA_Open


def tcp_set_xmit_timer(sk) -> None:
    if not tcp_schedule_loss_probe(sk, True):
        tcp_rearm_rto(sk)


def tcp_may_raise_cwnd(sk, flag: int) -> bool:
    if sk.reordering > sk.net.sysctl.values["net.ipv4.tcp_reordering"]:
        return bool(flag & FLAG_FORWARD_PROGRESS)
    return bool(flag & FLAG_DATA_ACKED)


def tcp_cong_control(sk, ack: int, acked_sacked: int, flag: int, newly_lost: int) -> None:
    """Reduce cwnd in CWR and Recovery (PRR), else let the module grow it."""
    if sk.icsk_ca_state in (TCP_CA_CWR, TCP_CA_Recovery):
        tcp_cwnd_reduction(sk, acked_sacked, newly_lost, flag)
    elif tcp_may_raise_cwnd(sk, flag):
        sk.icsk_ca_ops.cong_avoid(sk, ack, acked_sacked)
        sk.snd_cwnd_stamp = sk.net.clock.now
    tcp_update_pacing_rate(sk)


def tcp_update_pacing_rate(sk) -> None:
    """sk_pacing_rate: mss * cwnd / srtt, x tcp_pacing_ss_ratio (200 %) while cwnd is under half
    ssthresh, x tcp_pacing_ca_ratio (120 %) after (read by ss; nothing here paces on it)."""
    values = sk.net.sysctl.values
    rate = sk.mss_cache * ((1_000_000 // 100) << 3)
    rate *= values["net.ipv4.tcp_pacing_ss_ratio" if sk.snd_cwnd < sk.snd_ssthresh // 2
                   else "net.ipv4.tcp_pacing_ca_ratio"]
    rate *= max(sk.snd_cwnd, sk.packets_out)
    if sk.srtt_us:
        rate //= sk.srtt_us
    sk.sk_pacing_rate = min(rate, sk.sk_max_pacing_rate)


def tcp_rate_gen(sk, newest_delivered) -> None:
    """What tcp_rate.c keeps of a delivery sample here: app_limited clears once
    what was in flight when the application went idle is delivered, and
    rate_app_limited follows the newest delivered segment (no rates are sampled)."""
    if sk.app_limited and after(sk.delivered, sk.app_limited):
        sk.app_limited = 0
    if newest_delivered is not None:
        sk.rate_app_limited = newest_delivered.tx_app_limited


def tcp_xmit_recovery(sk, rexmit: int) -> None:
    if rexmit == REXMIT_NONE or sk.state == TCP_SYN_SENT:
        return
    if rexmit == REXMIT_NEW:
        __tcp_push_pending_frames(sk, tcp_current_mss(sk), TCP_NAGLE_OFF)
        if after(sk.snd_nxt, sk.high_seq):
            return
        sk.frto = False
    tcp_xmit_retransmit_queue(sk)


def tcp_ack_probe(sk) -> None:
    """An ACK while nothing is in flight: a window that opened stops the
    zero-window probes, one still closed backs them off."""
    if not sk.write_queue:
        return
    if not after(sk.write_queue[0].end_seq, tcp_wnd_end(sk)):
        sk.backoff = 0
        sk.icsk_probes_tstamp = 0.0
        inet_csk_clear_xmit_timer(sk, ICSK_TIME_PROBE0)
    else:
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, tcp_probe0_when(sk, tcp_rto_max(sk)), tcp_rto_max(sk))


def tcp_ack_tail(sk, ack: int, prior_snd_una: int, prior_fack: int, prior_packets: int, flag: int,
                 sack_blocks=(), num_dupack: int | None = None) -> int:
    """tcp_ack() from tcp_sacktag_write_queue() to its end, once the caller
    validated the ACK and moved snd_una, the window and ts_recent (FLAG_DATA,
    FLAG_WIN_UPDATE, FLAG_SND_UNA_ADVANCED, FLAG_SLOWPATH in `flag`)."""
    delivered_before, lost_before = sk.delivered, sk.lost
    state = SackState()
    if flag & FLAG_SND_UNA_ADVANCED:
        sk.retransmits = 0
    if sack_blocks:
        flag |= tcp_sacktag_write_queue(sk, sack_blocks, prior_snd_una, state)
    sk.err_soft = 0
    sk.probes_out = 0
    sk.rcv_tstamp = sk.net.clock.now
    if not prior_packets:
        if flag & FLAG_DSACKING_ACK:
            flag, _ = tcp_fastretrans_alert(sk, prior_snd_una, 0, flag)
        tcp_ack_probe(sk)
        if sk.tlp_high_seq:
            tcp_process_tlp_ack(sk, ack, flag)
        return flag
    acked_flag, _ = tcp_clean_rtx_queue(sk, prior_fack, prior_snd_una, state)
    flag |= acked_flag
    if sk.tlp_high_seq:
        tcp_process_tlp_ack(sk, ack, flag)
    rexmit = REXMIT_NONE
    if tcp_ack_is_dubious(sk, flag):
        if num_dupack is None:
            num_dupack = 0 if flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DSACKING_ACK) else 1
        flag, rexmit = tcp_fastretrans_alert(sk, prior_snd_una, num_dupack, flag)
    if flag & FLAG_SET_XMIT_TIMER:
        tcp_set_xmit_timer(sk)
    delivered = sk.delivered - delivered_before
    sk.net.mib.net_statistics[LINUX_MIB["TCPDelivered"]] += max(delivered, 0)
    tcp_rate_gen(sk, state.newest_delivered)
    tcp_cong_control(sk, ack, delivered, flag, sk.lost - lost_before)
    tcp_xmit_recovery(sk, rexmit)
    return flag
