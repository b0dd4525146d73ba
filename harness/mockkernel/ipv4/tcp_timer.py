"""TCP's timers (net/ipv4/tcp_timer.c, inet_connection_sock.c's request timer).

Three timers per socket, as inet_csk_init_xmit_timers() makes them, all on
the namespace's virtual clock: the write timer (icsk_retransmit_timer) stands
for the RTO, the zero-window probe, the tail loss probe or RACK's reordering
timeout (icsk_pending says which); the delayed-ACK timer; sk_timer for
keepalive and an orphan's FIN_WAIT2.

tcp_retransmit_timer(): enter Loss, resend the head, then double the RTO
(at most tcp_rto_max_ms). A SYN is resent at a fixed 1 s for its first
tcp_syn_linear_timeouts (4) retransmissions before the doubling starts, and
gives up after tcp_syn_retries + tcp_syn_linear_timeouts of them; established
data gives up once the time since the first retransmission exceeds what
tcp_retries2 doublings from the minimum RTO would take (tcp_model_timeout():
924.6 s for 15), with ETIMEDOUT. The delayed ACK inflates ato when it fires
(left in pingpong mode: ato back to 40 ms). A request's SYN-ACK is resent at
1 s, 2 s, 4 s... (reqsk_timer_handler()) and dropped after tcp_synack_retries.
Left out: TCP_USER_TIMEOUT's clamps, thin-stream linear timeouts, orphans'
tcp_out_of_resources(), dst negative advice. TCP_KEEPIDLE, TCP_KEEPINTVL and
TCP_KEEPCNT override the keepalive sysctls per socket (keepalive_time_when(),
keepalive_intvl_when(), keepalive_probes() in include/net/tcp.h).
"""
from __future__ import annotations

import errno

from harness.mockkernel.clock import Timer
from harness.mockkernel.core.snmp import LINUX_MIB
from harness.mockkernel.ipv4.tcp_cong import TCP_CA_Disorder, TCP_CA_Loss, TCP_CA_Recovery
from harness.mockkernel.ipv4.tcp_output import (ICSK_TIME_LOSS_PROBE, ICSK_TIME_PROBE0, ICSK_TIME_REO_TIMEOUT,
                                                ICSK_TIME_RETRANS, LINUX_MIB_TCPKEEPALIVE, LINUX_MIB_TCPSYNRETRANS,
                                                TCP_ATO_MIN, TCP_MIB_RETRANSSEGS, TCP_RESOURCE_PROBE_INTERVAL,
                                                TCP_TIMEOUT_INIT, inet_csk_reset_xmit_timer,
                                                tcp_retransmit_skb, tcp_rto_max, tcp_rto_min, tcp_send_ack,
                                                tcp_send_active_reset, tcp_send_loss_probe, tcp_send_probe0,
                                                tcp_write_wakeup)
from harness.mockkernel.ipv4.tcp_recovery import tcp_enter_loss, tcp_is_sack, tcp_rack_reo_timeout
from harness.mockkernel.ipv4.tcp_sock import (ICSK_ACK_SCHED, ICSK_ACK_TIMER, TCP_CLOSE, TCP_FIN_WAIT2,
                                              TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT, inet_csk_reqsk_queue_drop,
                                              tcp_done)


def tcp_init_xmit_timers(sk) -> None:
    """inet_csk_init_xmit_timers(): the write, delayed-ACK and keepalive timers."""
    clock = sk.net.clock
    sk.icsk_retransmit_timer = Timer(clock, lambda: tcp_write_timer_handler(sk))
    sk.icsk_delack_timer = Timer(clock, lambda: tcp_delack_timer_handler(sk))
    sk.sk_timer = Timer(clock, lambda: tcp_keepalive_timer(sk))


def tcp_clear_xmit_timers(sk) -> None:
    sk.icsk_pending = 0
    sk.icsk_ack.pending = 0
    for timer in (sk.icsk_retransmit_timer, sk.icsk_delack_timer, sk.sk_timer):
        timer.del_timer()


def tcp_write_err(sk) -> None:
    """Give up: ETIMEDOUT (or the soft error an ICMP left) to the application, the connection done."""
    sk.err = sk.err_soft or errno.ETIMEDOUT
    sk.write_queue.clear()
    sk.rtx_queue.clear()
    sk.sk_wmem_queued = 0
    tcp_done(sk)
    sk.net.mib.net_statistics[LINUX_MIB["TCPAbortOnTimeout"]] += 1


def tcp_model_timeout(boundary: int, rto_base: float, rto_max: float) -> float:
    """How long `boundary` retransmissions take, doubling from `rto_base` up to the maximum RTO."""
    linear_backoff_thresh = int(rto_max / rto_base).bit_length() - 1
    if boundary <= linear_backoff_thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << linear_backoff_thresh) - 1) * rto_base + (boundary - linear_backoff_thresh) * rto_max


def retransmits_timed_out(sk, boundary: int) -> bool:
    """The time since the first retransmission reached what `boundary` doublings take."""
    if not sk.retransmits:
        return False
    rto_base = TCP_TIMEOUT_INIT if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV) else tcp_rto_min(sk)
    timeout = tcp_model_timeout(boundary, rto_base, tcp_rto_max(sk))
    elapsed_ms = int(sk.net.clock.now * 1000) - int(sk.retrans_stamp * 1000)
    return elapsed_ms - int(timeout * 1000) >= 0


def tcp_write_timeout(sk) -> bool:
    """Whether the connection has to give up (it is then done)."""
    values = sk.net.sysctl.values
    if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        max_retransmits = sk.icsk_syn_retries or values["net.ipv4.tcp_syn_retries"]
        if sk.state == TCP_SYN_SENT:
            max_retransmits += values["net.ipv4.tcp_syn_linear_timeouts"]
        expired = sk.retransmits >= max_retransmits
    else:
        expired = retransmits_timed_out(sk, values["net.ipv4.tcp_retries2"])
    if expired:
        tcp_write_err(sk)
    return expired


def tcp_retransmit_timer(sk) -> None:
    """The RTO fired: Loss, the head again, the RTO doubled (linear for a SYN's first retries)."""
    if not sk.packets_out or not sk.rtx_queue:
        return
    net = sk.net
    values = net.sysctl.values
    sk.tlp_high_seq = 0
    if not sk.snd_wnd and not sk.done and sk.state not in (TCP_SYN_SENT, TCP_SYN_RECV):
        # the peer shrank its window over data in flight: retransmits become zero-window probes
        if net.clock.now - sk.rcv_tstamp > tcp_rto_max(sk):
            tcp_write_err(sk)
            return
        tcp_enter_loss(sk)
        tcp_retransmit_skb(sk, sk.rtx_queue[0])
        _reset_rto(sk)
        return
    net.mib.net_statistics[LINUX_MIB["TCPTimeouts"]] += 1
    if tcp_write_timeout(sk):
        return
    if not sk.retransmits:
        mib_name = None
        if sk.icsk_ca_state == TCP_CA_Recovery:
            mib_name = "TCPSackRecoveryFail" if tcp_is_sack(sk) else "TCPRenoRecoveryFail"
        elif sk.icsk_ca_state == TCP_CA_Loss:
            mib_name = "TCPLossFailures"
        elif sk.icsk_ca_state == TCP_CA_Disorder or sk.sacked_out:
            mib_name = "TCPSackFailures" if tcp_is_sack(sk) else "TCPRenoFailures"
        if mib_name:
            net.mib.net_statistics[LINUX_MIB[mib_name]] += 1
    tcp_enter_loss(sk)
    sk.retransmits += 1
    if tcp_retransmit_skb(sk, sk.rtx_queue[0]):
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, TCP_RESOURCE_PROBE_INTERVAL, tcp_rto_max(sk))
        return
    sk.backoff += 1
    if sk.state != TCP_SYN_SENT or sk.backoff > values["net.ipv4.tcp_syn_linear_timeouts"]:
        sk.rto = min(sk.rto * 2, tcp_rto_max(sk))
    _reset_rto(sk)


def _reset_rto(sk) -> None:
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, sk.rto, tcp_rto_max(sk))


def tcp_probe_timer(sk) -> None:
    """A zero-window probe is due; give up after tcp_retries2 unanswered ones."""
    if sk.packets_out or not sk.write_queue:
        sk.probes_out = 0
        sk.icsk_probes_tstamp = 0.0
        return
    if not sk.icsk_probes_tstamp:
        sk.icsk_probes_tstamp = sk.net.clock.now
    if sk.probes_out >= sk.net.sysctl.values["net.ipv4.tcp_retries2"]:
        tcp_write_err(sk)
    else:
        tcp_send_probe0(sk)


def tcp_write_timer_handler(sk) -> None:
    if sk.state in (TCP_CLOSE, TCP_LISTEN) or not sk.icsk_pending:
        return
    event = sk.icsk_pending
    if event == ICSK_TIME_REO_TIMEOUT:
        tcp_rack_reo_timeout(sk)
    elif event == ICSK_TIME_LOSS_PROBE:
        tcp_send_loss_probe(sk)
    elif event == ICSK_TIME_RETRANS:
        sk.icsk_pending = 0
        tcp_retransmit_timer(sk)
    elif event == ICSK_TIME_PROBE0:
        sk.icsk_pending = 0
        tcp_probe_timer(sk)


def tcp_delack_timer_handler(sk) -> None:
    """The delayed ACK is due: send it and inflate ato (up to the RTO), or
    leave pingpong mode with ato back at the minimum."""
    if sk.state in (TCP_CLOSE, TCP_LISTEN):
        return
    ack = sk.icsk_ack
    if not ack.pending & ICSK_ACK_TIMER:
        return
    ack.pending &= ~ICSK_ACK_TIMER
    if ack.pending & ICSK_ACK_SCHED:
        if not ack.pingpong:
            ack.ato = min(ack.ato * 2, sk.rto)
        else:
            ack.pingpong = 0
            ack.ato = TCP_ATO_MIN
        tcp_send_ack(sk)
        sk.net.mib.net_statistics[LINUX_MIB["DelayedACKs"]] += 1


def keepalive_time_when(sk) -> float:
    return float(sk.keepalive_time or sk.net.sysctl.values["net.ipv4.tcp_keepalive_time"])


def keepalive_intvl_when(sk) -> float:
    return float(sk.keepalive_intvl or sk.net.sysctl.values["net.ipv4.tcp_keepalive_intvl"])


def keepalive_probes(sk) -> int:
    return sk.keepalive_probes or sk.net.sysctl.values["net.ipv4.tcp_keepalive_probes"]


def keepalive_time_elapsed(sk) -> float:
    """Idle time: since the last segment received or the last ACK that moved snd_una."""
    return sk.net.clock.now - max(sk.rcv_tstamp, sk.icsk_ack.lrcvtime)


def inet_csk_reset_keepalive_timer(sk, when: float) -> None:
    sk.sk_timer.mod_timer(sk.net.clock.now + when)


def tcp_set_keepalive(sk, on: bool) -> None:
    """SO_KEEPALIVE: the timer runs from now, tcp_keepalive_time away."""
    if sk.state in (TCP_CLOSE, TCP_LISTEN):
        return
    if on and not sk.keepalive:
        inet_csk_reset_keepalive_timer(sk, keepalive_time_when(sk))
    elif not on:
        sk.sk_timer.del_timer()


# what an orphan's FIN_WAIT2 timeout does: tcp_minisocks.py (above this module) registers it
fin_wait2_timeout_handler = None


def register_fin_wait2_timeout(handler) -> None:
    global fin_wait2_timeout_handler
    fin_wait2_timeout_handler = handler


def tcp_keepalive_timer(sk) -> None:
    """Keepalive: after TCP_KEEPIDLE (tcp_keepalive_time) idle a probe every
    TCP_KEEPINTVL (tcp_keepalive_intvl), RST and ETIMEDOUT after TCP_KEEPCNT
    (tcp_keepalive_probes) unanswered. On an orphan in FIN_WAIT2 the timer is
    the FIN_WAIT2 timeout instead."""
    if sk.state == TCP_FIN_WAIT2 and sk.done:
        fin_wait2_timeout_handler(sk)
        return
    if not sk.keepalive or sk.state in (TCP_CLOSE, TCP_SYN_SENT):
        return
    when = keepalive_time_when(sk)
    if sk.packets_out or sk.write_queue:
        inet_csk_reset_keepalive_timer(sk, when)
        return
    elapsed = keepalive_time_elapsed(sk)
    if elapsed >= when:
        if sk.probes_out >= keepalive_probes(sk):
            tcp_send_active_reset(sk)
            tcp_write_err(sk)
            return
        if tcp_write_wakeup(sk, LINUX_MIB_TCPKEEPALIVE) <= 0:
            sk.probes_out += 1
            when = keepalive_intvl_when(sk)
        else:
            when = TCP_RESOURCE_PROBE_INTERVAL
    else:
        when -= elapsed
    inet_csk_reset_keepalive_timer(sk, when)


# --- the SYN-ACK of a request in the listener's SYN queue

def reqsk_timeout(req, max_timeout: float) -> float:
    return min(TCP_TIMEOUT_INIT * (1 << req.num_timeout), max_timeout)


def reqsk_timer_start(req) -> None:
    """inet_csk_reqsk_queue_hash_add(): the SYN-ACK's timer, 1 s away."""
    net = req.listener.net
    req.rsk_timer = Timer(net.clock, lambda: reqsk_timer_handler(req))
    req.rsk_timer.mod_timer(net.clock.now + TCP_TIMEOUT_INIT)


def tcp_rtx_synack(sk_listener, req) -> int:
    """Resend the SYN-ACK (the request's send_synack()); 0 once it left."""
    err = req.rsk_ops.send_synack(sk_listener, req)
    if err:
        return err
    net = sk_listener.net
    net.mib.tcp_statistics[TCP_MIB_RETRANSSEGS] += 1
    net.mib.net_statistics[LINUX_MIB_TCPSYNRETRANS] += 1
    req.num_retrans += 1
    return 0


def reqsk_timer_handler(req) -> None:
    """Resend the SYN-ACK at 1, 2, 4... s; drop the request after
    tcp_synack_retries. With the SYN queue over half full (at least 8), old
    requests get fewer retries, down to 2, while young ones are the fewer."""
    listener = req.listener
    net = listener.net
    if listener.state != TCP_LISTEN:
        inet_csk_reqsk_queue_drop(listener, req)
        return
    max_retries = listener.icsk_syn_retries or net.sysctl.values["net.ipv4.tcp_synack_retries"]
    queue = listener.syn_queue.values()
    qlen = len(queue)
    if qlen << 1 > max(8, listener.sk_max_ack_backlog):
        young = sum(1 for other in queue if not other.num_timeout) << 1
        while max_retries > 2:
            if qlen < young:
                break
            max_retries -= 1
            young <<= 1
    net.mib.net_statistics[LINUX_MIB["TCPTimeouts"]] += 1
    expire = req.num_timeout >= max_retries
    if not expire and (tcp_rtx_synack(listener, req) == 0 or req.acked):
        req.num_timeout += 1
        req.rsk_timer.mod_timer(net.clock.now + reqsk_timeout(req, tcp_rto_max(listener)))
        return
    inet_csk_reqsk_queue_drop(listener, req)
