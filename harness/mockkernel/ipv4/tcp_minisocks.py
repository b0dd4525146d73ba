"""TCP's small sockets (net/ipv4/tcp_minisocks.c): TIME_WAIT and the request
sock of a connection half open.

tcp_time_wait() replaces a closing socket in the established table by a
`TimewaitSock`: TCP_TIMEWAIT_LEN (60 s) in TIME_WAIT, or what is left of
tcp_fin_timeout in FIN_WAIT2 for an orphan (at least 3.5 RTOs), none past
tcp_max_tw_buckets (TCPTimeWaitOverflow). tcp_timewait_state_process() answers
what reaches it: in FIN_WAIT2 the peer's FIN moves it to TIME_WAIT (ACKed),
new data is a RST; in TIME_WAIT a RST kills it (unless tcp_rfc1337), an
in-window ACK restarts the 60 s, a SYN with a higher sequence number or
timestamp may open a new connection (TCP_TW_SYN, ISN past the old snd_nxt),
anything else gets an ACK (rate-limited by tcp_invalid_ratelimit); PAWS
failures are TCP_RFC7323_TW_PAWS. tcp_check_req() takes the segment for a
request sock: a retransmitted SYN is answered with the SYN-ACK again, an ACK of
the wrong sequence number lets the listener send a RST, one outside the window
is ACKed (TCP_OVERWINDOW, TCP_RFC7323_PAWS), a RST or SYN kills the request
(EmbryonicRsts, a RST back for the SYN), and the right ACK creates the child
socket (tcp_create_openreq_child()); with the accept queue full the ACK is
dropped (TCP_LISTEN_OVERFLOW) and the request stays, or with
tcp_abort_on_overflow it is reset.
"""
from __future__ import annotations

from enum import Enum

from harness.dropreason import DropReason
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.snmp import LINUX_MIB, SNMP4_TCP_LIST
from harness.mockkernel.ipv4 import tcp_output, tcp_recovery, tcp_timer
from harness.mockkernel.ipv4.inet_hashtables import ehash_key, inet_bind_hash, inet_put_port
from harness.mockkernel.ipv4.tcp_output import TCP_TIMEOUT_INIT
from harness.mockkernel.ipv4.tcp_sock import (TCP_FIN_WAIT2, TCP_SYN_RECV, TCP_TIME_WAIT, IcskAck,
                                              RequestSock, TcpOptionsReceived, TcpSock, TimewaitSock, after,
                                              before, between, inet_csk_reqsk_queue_drop, tcp_done)
from harness.mockkernel.wire.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN

TCP_TIMEWAIT_LEN = 60.0
LINUX_MIB_TIMEWAITED = LINUX_MIB["TW"]
LINUX_MIB_TIMEWAITKILLED = LINUX_MIB["TWKilled"]
LINUX_MIB_TCPTIMEWAITOVERFLOW = LINUX_MIB["TCPTimeWaitOverflow"]
LINUX_MIB_PAWS_TW_REJECTED = LINUX_MIB["PAWSTimewait"]
LINUX_MIB_PAWSESTABREJECTED = LINUX_MIB["PAWSEstab"]
LINUX_MIB_TCPACKSKIPPEDFINWAIT2 = LINUX_MIB["TCPACKSkippedFinWait2"]
LINUX_MIB_TCPACKSKIPPEDTIMEWAIT = LINUX_MIB["TCPACKSkippedTimeWait"]
LINUX_MIB_TCPACKSKIPPEDSYNRECV = LINUX_MIB["TCPACKSkippedSynRecv"]
LINUX_MIB_EMBRYONICRSTS = LINUX_MIB["EmbryonicRsts"]
LINUX_MIB_LISTENOVERFLOWS = LINUX_MIB["ListenOverflows"]
LINUX_MIB_LISTENDROPS = LINUX_MIB["ListenDrops"]
TCP_MIB_ATTEMPTFAILS = SNMP4_TCP_LIST.index("AttemptFails")
TCP_MIB_PASSIVEOPENS = SNMP4_TCP_LIST.index("PassiveOpens")


class TcpTwStatus(Enum):
    """enum tcp_tw_status: what tcp_v4_rcv() does next."""

    TCP_TW_SUCCESS = 0  # consumed
    TCP_TW_RST = 1
    TCP_TW_ACK = 2
    TCP_TW_SYN = 3  # a new connection: to the listener, with this ISN


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def tcp_in_window(seq: int, end_seq: int, s_win: int, e_win: int) -> bool:
    if seq == s_win:
        return True
    if after(end_seq, s_win) and before(seq, e_win):
        return True
    return seq == e_win and seq == end_seq


def tcp_fin_time(sk: TcpSock) -> float:
    """tcp_fin_time(): TCP_LINGER2 or tcp_fin_timeout, at least 3.5 RTOs."""
    fin_timeout = sk.linger2 or sk.net.sysctl.values["net.ipv4.tcp_fin_timeout"]
    return max(float(fin_timeout), 3.5 * sk.rto)


def tcp_fin_wait2_timeout(sk: TcpSock) -> None:
    """tcp_keepalive_timer() for an orphan in FIN_WAIT2 (its sk_timer): the
    rest of the timeout in a FIN_WAIT2 timewait sock, or a RST when none is left."""
    tmo = tcp_fin_time(sk) - TCP_TIMEWAIT_LEN
    if tmo > 0:
        tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)
        return
    tcp_output.tcp_send_active_reset(sk)
    tcp_done(sk)


def tcp_time_wait(sk: TcpSock, state, timeo: float) -> None:
    net = sk.net
    hashinfo = net.tcp_hashinfo
    if hashinfo.tw_refcount >= net.sysctl.values["net.ipv4.tcp_max_tw_buckets"]:
        net.mib.net_statistics[LINUX_MIB_TCPTIMEWAITOVERFLOW] += 1
        tcp_done(sk)
        return
    rx_opt = sk.rx_opt
    receive_window = tcp_output.tcp_receive_window(sk)
    tw = TimewaitSock(net, state, sk.rcv_saddr, sk.sport, sk.daddr, sk.dport, sk.rcv_nxt, sk.snd_nxt,
                      receive_window, rx_opt.rcv_wscale, rx_opt.ts_recent,
                      rx_opt.ts_recent_stamp if rx_opt.tstamp_ok else None, sk.tsoffset, net.clock.now, sk.sk_reuse,
                      sk.family, sk.ipv6only, sk.sk_txhash, sk.tos)
    rto = 3.5 * sk.rto
    timeo = TCP_TIMEWAIT_LEN if state == TCP_TIME_WAIT else max(timeo, rto)
    tw.tw_timer = Timer(net.clock, lambda: inet_twsk_kill(tw))
    tw.tw_timer.mod_timer(net.clock.now + timeo)
    # __inet_twsk_schedule() counts it when it starts: TWKilled for a short life, else TW
    net.mib.net_statistics[LINUX_MIB_TIMEWAITKILLED if timeo <= 4.0 else LINUX_MIB_TIMEWAITED] += 1
    hashinfo.ehash[ehash_key(sk)] = tw  # inet_twsk_hashdance_schedule()
    inet_bind_hash(hashinfo, tw, sk.sport)
    hashinfo.tw_refcount += 1
    tcp_done(sk)
    inet_put_port(hashinfo, sk)


def inet_twsk_kill(tw: TimewaitSock) -> None:
    """The TIME_WAIT sock leaves the tables (its timer, a RST, or a reuse)."""
    hashinfo = tw.net.tcp_hashinfo
    key = ehash_key(tw)
    if hashinfo.ehash.get(key) is not tw:
        return
    del hashinfo.ehash[key]
    inet_put_port(hashinfo, tw)
    hashinfo.tw_refcount -= 1
    tw.tw_timer.del_timer()


def inet_twsk_deschedule_put(tw: TimewaitSock) -> None:
    """Killed before its time (a RST, or connect() taking the 4-tuple over)."""
    inet_twsk_kill(tw)


def inet_twsk_reschedule(tw: TimewaitSock, timeo: float) -> None:
    tw.tw_timer.mod_timer(tw.net.clock.now + timeo)


def _tw_oow_rate_limit(tw: TimewaitSock, cb, mib_index: int) -> TcpTwStatus:
    """tcp_timewait_check_oow_rate_limit(): an ACK, at most one per tcp_invalid_ratelimit."""
    if cb.seq != cb.end_seq and not cb.tcp_flags & TCPHDR_SYN:
        return TcpTwStatus.TCP_TW_ACK
    net = tw.net
    now = net.clock.now
    if tw.last_oow_ack_time is not None and 0 <= now - tw.last_oow_ack_time < \
            net.sysctl.values["net.ipv4.tcp_invalid_ratelimit"] / 1000:
        net.mib.net_statistics[mib_index] += 1
        return TcpTwStatus.TCP_TW_SUCCESS
    tw.last_oow_ack_time = now
    return TcpTwStatus.TCP_TW_ACK


def tcp_timewait_state_process(tw: TimewaitSock, cb, opt: TcpOptionsReceived
                               ) -> tuple[TcpTwStatus, int, DropReason]:
    """(what to do, the ISN for TCP_TW_SYN, the drop reason). `opt` holds the
    segment's parsed options (saw_tstamp, rcv_tsval, rcv_tsecr)."""
    net = tw.net
    now = net.clock.now
    flags = cb.tcp_flags
    rcv_nxt = tw.tw_rcv_nxt
    paws_reject = False
    reason = DropReason.NOT_SPECIFIED
    if opt.saw_tstamp and tw.tw_ts_recent_stamp is not None:
        opt.ts_recent, opt.ts_recent_stamp = tw.tw_ts_recent, tw.tw_ts_recent_stamp
        paws_reject = _paws_reject(opt, bool(flags & TCPHDR_RST), now)
    else:
        opt.saw_tstamp = opt.saw_tstamp and tw.tw_ts_recent_stamp is not None
    if tw.tw_substate == TCP_FIN_WAIT2:
        if paws_reject or not tcp_in_window(cb.seq, cb.end_seq, rcv_nxt, (rcv_nxt + tw.tw_rcv_wnd) & 0xFFFFFFFF):
            return _tw_oow_rate_limit(tw, cb, LINUX_MIB_TCPACKSKIPPEDFINWAIT2), 0, reason
        if flags & TCPHDR_RST:
            inet_twsk_deschedule_put(tw)
            return TcpTwStatus.TCP_TW_SUCCESS, 0, reason
        if flags & TCPHDR_SYN and not before(cb.seq, rcv_nxt):
            return TcpTwStatus.TCP_TW_RST, 0, reason
        if not flags & TCPHDR_ACK or not after(cb.end_seq, rcv_nxt) or cb.end_seq == cb.seq:
            return TcpTwStatus.TCP_TW_SUCCESS, 0, reason
        if not flags & TCPHDR_FIN or cb.end_seq != (rcv_nxt + 1) & 0xFFFFFFFF:
            return TcpTwStatus.TCP_TW_RST, 0, reason  # new data after the half-close
        tw.tw_substate = TCP_TIME_WAIT
        tw.tw_rcv_nxt = cb.end_seq
        if opt.saw_tstamp:
            tw.tw_entry_stamp = now
            tw.tw_ts_recent_stamp, tw.tw_ts_recent = now, opt.rcv_tsval
        inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)
        return TcpTwStatus.TCP_TW_ACK, 0, reason
    if not paws_reject and cb.seq == rcv_nxt and (cb.seq == cb.end_seq or flags & TCPHDR_RST):
        if flags & TCPHDR_RST:
            if not net.sysctl.values["net.ipv4.tcp_rfc1337"]:
                inet_twsk_deschedule_put(tw)
                return TcpTwStatus.TCP_TW_SUCCESS, 0, reason
        else:
            inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)
        if opt.saw_tstamp:
            tw.tw_ts_recent, tw.tw_ts_recent_stamp = opt.rcv_tsval, now
        return TcpTwStatus.TCP_TW_SUCCESS, 0, reason
    if (flags & TCPHDR_SYN and not flags & (TCPHDR_RST | TCPHDR_ACK) and not paws_reject
            and (after(cb.seq, rcv_nxt) or (opt.saw_tstamp and _s32(tw.tw_ts_recent - opt.rcv_tsval) < 0))):
        isn = (tw.tw_snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1
        return TcpTwStatus.TCP_TW_SYN, isn, reason
    if paws_reject:
        reason = DropReason.TCP_RFC7323_TW_PAWS
        net.mib.net_statistics[LINUX_MIB_PAWS_TW_REJECTED] += 1
    if not flags & TCPHDR_RST:
        if paws_reject or flags & TCPHDR_ACK:
            inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)
        return _tw_oow_rate_limit(tw, cb, LINUX_MIB_TCPACKSKIPPEDTIMEWAIT), 0, reason
    return TcpTwStatus.TCP_TW_SUCCESS, 0, reason


def _paws_reject(opt: TcpOptionsReceived, rst: bool, now: float) -> bool:
    """tcp_paws_reject() (tcp_input.py has the socket's copy, which imports this module)."""
    if _s32(opt.ts_recent - opt.rcv_tsval) <= 0 or now >= opt.ts_recent_stamp + 2**31 // 1000 or not opt.ts_recent:
        return False
    return not (rst and now >= opt.ts_recent_stamp + 60)


def tcp_create_openreq_child(listener: TcpSock, req: RequestSock, cb) -> TcpSock:
    """inet_csk_clone_lock() + the tcp_sock set up from the request: the
    listener's buffers and options, the request's sequence numbers, window and
    options. PassiveOpens counts it."""
    net = listener.net
    child = TcpSock(net, state=TCP_SYN_RECV, family=listener.family, sk_prot=listener.sk_prot,
                    icsk_af_ops=listener.icsk_af_ops, ipv6only=listener.ipv6only, saddr=req.ir_loc_addr,
                    rcv_saddr=req.ir_loc_addr, daddr=req.ir_rmt_addr, sport=req.ir_num, dport=req.ir_rmt_port,
                    sk_rcvbuf=listener.sk_rcvbuf, sk_sndbuf=listener.sk_sndbuf,
                    sk_userlocks=listener.sk_userlocks, sk_reuse=listener.sk_reuse, nonagle=listener.nonagle,
                    linger=listener.linger, linger2=listener.linger2, keepalive=listener.keepalive,
                    keepalive_time=listener.keepalive_time, keepalive_intvl=listener.keepalive_intvl,
                    keepalive_probes=listener.keepalive_probes,
                    icsk_ca_ops=listener.icsk_ca_ops, scaling_ratio=listener.scaling_ratio,
                    rx_opt=TcpOptionsReceived(user_mss=listener.rx_opt.user_mss), icsk_ack=IcskAck())
    seq = (req.rcv_isn + 1) & 0xFFFFFFFF
    child.rcv_wup = child.copied_seq = child.rcv_nxt = seq
    child.segs_in = 1
    seq = (req.snt_isn + 1) & 0xFFFFFFFF
    child.snd_una = child.snd_nxt = child.snd_up = seq
    child.snd_wl1 = req.rcv_isn
    child.icsk_ack.lrcvtime = child.lsndtime = net.clock.now
    child.total_retrans = req.num_retrans
    child.write_seq = child.pushed_seq = seq
    tcp_timer.tcp_init_xmit_timers(child)
    rx_opt = child.rx_opt
    rx_opt.tstamp_ok, rx_opt.sack_ok, rx_opt.wscale_ok = req.tstamp_ok, req.sack_ok, req.wscale_ok
    child.window_clamp = req.rsk_window_clamp
    child.rcv_ssthresh = child.rcv_wnd = req.rsk_rcv_wnd
    if rx_opt.wscale_ok:
        rx_opt.snd_wscale, rx_opt.rcv_wscale = req.snd_wscale, req.rcv_wscale
    else:
        rx_opt.snd_wscale = rx_opt.rcv_wscale = 0
        child.window_clamp = min(child.window_clamp, 65535)
    child.snd_wnd = child.max_window = cb.window << rx_opt.snd_wscale
    if rx_opt.tstamp_ok:
        rx_opt.ts_recent, rx_opt.ts_recent_stamp = req.ts_recent, net.clock.now
        child.tcp_header_len = 32
    else:
        rx_opt.ts_recent_stamp = 0
        child.tcp_header_len = 20
    child.tsoffset = req.ts_off
    if cb.data_len >= 536 + child.tcp_header_len - cb.doff:
        child.icsk_ack.last_seg_size = cb.data_len + cb.doff - child.tcp_header_len
    rx_opt.mss_clamp = req.mss
    net.mib.tcp_statistics[TCP_MIB_PASSIVEOPENS] += 1
    return child


def sk_acceptq_is_full(listener: TcpSock) -> bool:
    return len(listener.accept_queue) > listener.sk_max_ack_backlog


def tcp_listendrop(listener: TcpSock) -> None:
    listener.sk_drops += 1
    listener.net.mib.net_statistics[LINUX_MIB_LISTENDROPS] += 1


def _req_oow_rate_limited(req: RequestSock, cb) -> bool:
    if cb.seq != cb.end_seq and not cb.tcp_flags & TCPHDR_SYN:
        return False
    net = req.listener.net
    now = net.clock.now
    if req.last_oow_ack_time is not None and 0 <= now - req.last_oow_ack_time < \
            net.sysctl.values["net.ipv4.tcp_invalid_ratelimit"] / 1000:
        net.mib.net_statistics[LINUX_MIB_TCPACKSKIPPEDSYNRECV] += 1
        return True
    req.last_oow_ack_time = now
    return False


def tcp_reqsk_timeout(req: RequestSock) -> float:
    return min(TCP_TIMEOUT_INIT * 2 ** req.num_timeout, 120.0)


def tcp_check_req(listener: TcpSock, cb, req: RequestSock, opt: TcpOptionsReceived):
    """(child socket, listener to answer for the segment, or None; drop reason)."""
    net = listener.net
    now = net.clock.now
    flags = cb.tcp_flags & (TCPHDR_RST | TCPHDR_SYN | TCPHDR_ACK)
    paws_reject = tsecr_reject = False
    if opt.saw_tstamp:
        opt.ts_recent = req.ts_recent
        if opt.rcv_tsecr:
            if req.tstamp_ok:
                tsecr_reject = not between(opt.rcv_tsecr, req.snt_tsval_first, req.snt_tsval_last)
            opt.rcv_tsecr = (opt.rcv_tsecr - req.ts_off) & 0xFFFFFFFF
        opt.ts_recent_stamp = now - tcp_reqsk_timeout(req)
        paws_reject = _paws_reject(opt, bool(cb.tcp_flags & TCPHDR_RST), now)
    if cb.seq == req.rcv_isn and flags == TCPHDR_SYN and not paws_reject:
        if not _req_oow_rate_limited(req, cb) and not req.rsk_ops.rtx_synack(listener, req):
            if req.rsk_timer is not None and req.rsk_timer.pending:
                req.rsk_timer.mod_timer(now + tcp_reqsk_timeout(req))  # as after a fast retransmit
        return None, DropReason.NOT_SPECIFIED
    if flags & TCPHDR_ACK and cb.ack_seq != (req.snt_isn + 1) & 0xFFFFFFFF:
        return listener, DropReason.NOT_SPECIFIED
    rcv_nxt = (req.rcv_isn + 1) & 0xFFFFFFFF
    if paws_reject or tsecr_reject or not tcp_in_window(cb.seq, cb.end_seq, rcv_nxt,
                                                         (rcv_nxt + req.rsk_rcv_wnd) & 0xFFFFFFFF):
        if not flags & TCPHDR_RST and not _req_oow_rate_limited(req, cb):
            req.rsk_ops.send_ack(listener, cb, req)
        if paws_reject:
            net.mib.net_statistics[LINUX_MIB_PAWSESTABREJECTED] += 1
            return None, DropReason.TCP_RFC7323_PAWS
        if tsecr_reject:
            net.mib.net_statistics[LINUX_MIB["TSEcrRejected"]] += 1
            return None, DropReason.TCP_RFC7323_TSECR
        return None, DropReason.TCP_OVERWINDOW
    if cb.seq == req.rcv_isn:
        flags &= ~TCPHDR_SYN  # the SYN is behind the window
    if flags & (TCPHDR_RST | TCPHDR_SYN):
        net.mib.tcp_statistics[TCP_MIB_ATTEMPTFAILS] += 1
        return _embryonic_reset(listener, cb, req, flags), DropReason.NOT_SPECIFIED
    if not flags & TCPHDR_ACK:
        return None, DropReason.NOT_SPECIFIED
    child = listener.icsk_af_ops.syn_recv_sock(listener, cb, req)
    if child is None:
        if not net.sysctl.values["net.ipv4.tcp_abort_on_overflow"]:
            req.acked = True
            return None, DropReason.TCP_LISTEN_OVERFLOW
        return _embryonic_reset(listener, cb, req, flags), DropReason.TCP_LISTEN_OVERFLOW
    if opt.saw_tstamp and not after(cb.seq, rcv_nxt):
        child.rx_opt.ts_recent = opt.rcv_tsval
    tcp_recovery.tcp_synack_rtt_meas(child, req)
    inet_csk_reqsk_queue_drop(listener, req)  # inet_csk_complete_hashdance()
    child.parent = listener
    listener.accept_queue.append(child)
    return child, DropReason.NOT_SPECIFIED


def _embryonic_reset(listener: TcpSock, cb, req: RequestSock, flags: int) -> None:
    if not flags & TCPHDR_RST:
        req.rsk_ops.send_reset(listener, cb)
    if inet_csk_reqsk_queue_drop(listener, req):
        listener.net.mib.net_statistics[LINUX_MIB_EMBRYONICRSTS] += 1

