"""CUBIC congestion control (net/ipv4/tcp_cubic.c), the mock's default.

The window grows as the cubic W(t) = C (t - K)^3 + W_max, computed as the
kernel computes it: in jiffies (HZ 250) scaled to 2^10 per second, with
cubic_root()'s table and one Newton-Raphson step, the TCP-friendly region
(tcp_friendliness) and at most one packet per two ACKed. On a loss, ssthresh
is cwnd * 717/1024 and W_max remembers cwnd (less with fast convergence).
HyStart (ACK train and delay increase) ends slow start early. The module
parameters are the kernel's defaults. Left out: pacing's ACK-delay cushion
(no pacing here: hystart_ack_delay() is 0 as with sk_pacing_rate 0).
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.ipv4.tcp_sock import after
from harness.mockkernel.ipv4.tcp_cong import (CA_EVENT_TX_START, TCP_CA_Loss, TcpCongestionOps, tcp_cong_avoid_ai,
                                              tcp_in_slow_start, tcp_is_cwnd_limited, tcp_register_congestion_control,
                                              tcp_reno_undo_cwnd, tcp_slow_start)

HZ = 250
BICTCP_BETA_SCALE = 1024
BICTCP_HZ = 10
HYSTART_ACK_TRAIN, HYSTART_DELAY = 0x1, 0x2
HYSTART_MIN_SAMPLES = 8
HYSTART_DELAY_MIN, HYSTART_DELAY_MAX = 4000, 16000  # usec
# module parameters
FAST_CONVERGENCE = 1
BETA = 717  # /1024
BIC_SCALE = 41
TCP_FRIENDLINESS = 1
HYSTART = 1
HYSTART_DETECT = HYSTART_ACK_TRAIN | HYSTART_DELAY
HYSTART_LOW_WINDOW = 16
HYSTART_ACK_DELTA_US = 2000
# cubictcp_register()'s precomputed factors (srtt taken as 100 ms)
BETA_SCALE = 8 * (BICTCP_BETA_SCALE + BETA) // 3 // (BICTCP_BETA_SCALE - BETA)
CUBE_RTT_SCALE = BIC_SCALE * 10
CUBE_FACTOR = (1 << (10 + 3 * BICTCP_HZ)) // (BIC_SCALE * 10)
U32 = 0xFFFFFFFF
# cbrt(x) MSB values for x MSB values in [0..63]: v = cbrt(x << 18) - 1
CUBIC_ROOT_TABLE = (
    0, 54, 54, 54, 118, 118, 118, 118, 123, 129, 134, 138, 143, 147, 151, 156,
    157, 161, 164, 168, 170, 173, 176, 179, 181, 185, 187, 190, 192, 194, 197, 199,
    200, 202, 204, 206, 209, 211, 213, 215, 217, 219, 221, 222, 224, 225, 227, 229,
    231, 232, 234, 236, 237, 239, 240, 242, 244, 245, 246, 248, 250, 251, 252, 254)


@dataclass(slots=True)
class Bictcp:
    """struct bictcp: cubic's per-socket state (inet_csk_ca())."""

    cnt: int = 0  # ACKs per cwnd increase
    last_max_cwnd: int = 0  # W_max
    last_cwnd: int = 0
    last_time: int = 0  # jiffies of the last update
    bic_origin_point: int = 0
    bic_K: int = 0  # time to the origin point, in 2^-10 s
    delay_min: int = 0  # usec
    epoch_start: int = 0  # jiffies; 0: no epoch
    ack_cnt: int = 0
    tcp_cwnd: int = 0  # what Reno would have
    sample_cnt: int = 0
    found: bool = False  # HyStart found the exit point
    round_start: int = 0  # usec
    end_seq: int = 0
    last_ack: int = 0  # usec
    curr_rtt: int = 0  # the round's minimum RTT, usec


def _jiffies(sk) -> int:
    return int(sk.net.clock.now * HZ) & U32


def _clock_us(sk) -> int:
    return int(sk.net.clock.now * 1_000_000) & U32


def cubic_root(a: int) -> int:
    """The cube root by table lookup and one Newton-Raphson iteration (~0.2% error)."""
    b = a.bit_length()
    if b < 7:
        return (CUBIC_ROOT_TABLE[a] + 35) >> 6
    b = ((b * 84) >> 8) - 1
    shift = a >> (b * 3)
    x = (((CUBIC_ROOT_TABLE[shift] + 10) << b) & U32) >> 6
    x = 2 * x + a // (x * (x - 1))
    return ((x * 341) >> 10) & U32


def bictcp_hystart_reset(sk) -> None:
    ca = sk.ca_priv
    ca.round_start = ca.last_ack = _clock_us(sk)
    ca.end_seq = sk.snd_nxt
    ca.curr_rtt = U32
    ca.sample_cnt = 0


def bictcp_reset(sk) -> None:
    sk.ca_priv = Bictcp()


def cubictcp_init(sk) -> None:
    bictcp_reset(sk)
    if HYSTART:
        bictcp_hystart_reset(sk)


def cubictcp_cwnd_event(sk, event: int) -> None:
    """After an idle period, shift the epoch so growth resumes where it was."""
    if event != CA_EVENT_TX_START:
        return
    ca, now = sk.ca_priv, _jiffies(sk)
    delta = now - (int(sk.lsndtime * HZ) & U32)
    if ca.epoch_start and delta > 0:
        ca.epoch_start = (ca.epoch_start + delta) & U32
        if after(ca.epoch_start, now):
            ca.epoch_start = now


def bictcp_update(sk, ca: Bictcp, cwnd: int, acked: int) -> None:
    ca.ack_cnt += acked
    now = _jiffies(sk)
    if ca.last_cwnd == cwnd and ((now - ca.last_time) & U32) <= HZ // 32:
        return
    if not (ca.epoch_start and now == ca.last_time):
        ca.last_cwnd, ca.last_time = cwnd, now
        if ca.epoch_start == 0:
            ca.epoch_start, ca.ack_cnt, ca.tcp_cwnd = now, acked, cwnd
            if ca.last_max_cwnd <= cwnd:
                ca.bic_K, ca.bic_origin_point = 0, cwnd
            else:
                ca.bic_K = cubic_root(CUBE_FACTOR * (ca.last_max_cwnd - cwnd))
                ca.bic_origin_point = ca.last_max_cwnd
        # usecs_to_jiffies() rounds up
        t = ((now - ca.epoch_start) & U32) + -(-ca.delay_min * HZ // 1_000_000)
        t = (t << BICTCP_HZ) // HZ
        offs = ca.bic_K - t if t < ca.bic_K else t - ca.bic_K
        delta = ((CUBE_RTT_SCALE * offs * offs * offs) >> (10 + 3 * BICTCP_HZ)) & U32
        bic_target = ca.bic_origin_point - delta if t < ca.bic_K else ca.bic_origin_point + delta
        ca.cnt = cwnd // (bic_target - cwnd) if bic_target > cwnd else 100 * cwnd
        if ca.last_max_cwnd == 0 and ca.cnt > 20:
            ca.cnt = 20  # 5% per RTT while the bandwidth is unknown
    if TCP_FRIENDLINESS:
        delta = (cwnd * BETA_SCALE) >> 3
        while ca.ack_cnt > delta:
            ca.ack_cnt -= delta
            ca.tcp_cwnd += 1
        if ca.tcp_cwnd > cwnd:
            ca.cnt = min(ca.cnt, cwnd // (ca.tcp_cwnd - cwnd))
    ca.cnt = max(ca.cnt, 2)


def cubictcp_cong_avoid(sk, ack: int, acked: int) -> None:
    if not tcp_is_cwnd_limited(sk):
        return
    if tcp_in_slow_start(sk):
        acked = tcp_slow_start(sk, acked)
        if not acked:
            return
    ca = sk.ca_priv
    bictcp_update(sk, ca, sk.snd_cwnd, acked)
    tcp_cong_avoid_ai(sk, ca.cnt, acked)


def cubictcp_recalc_ssthresh(sk) -> int:
    ca = sk.ca_priv
    ca.epoch_start = 0
    if sk.snd_cwnd < ca.last_max_cwnd and FAST_CONVERGENCE:
        ca.last_max_cwnd = sk.snd_cwnd * (BICTCP_BETA_SCALE + BETA) // (2 * BICTCP_BETA_SCALE)
    else:
        ca.last_max_cwnd = sk.snd_cwnd
    return max(sk.snd_cwnd * BETA // BICTCP_BETA_SCALE, 2)


def cubictcp_state(sk, new_state: int) -> None:
    if new_state == TCP_CA_Loss:
        bictcp_reset(sk)
        bictcp_hystart_reset(sk)


def hystart_update(sk, delay: int) -> None:
    ca = sk.ca_priv
    if after(sk.snd_una, ca.end_seq):
        bictcp_hystart_reset(sk)
    if sk.snd_cwnd < HYSTART_LOW_WINDOW:
        return
    if HYSTART_DETECT & HYSTART_ACK_TRAIN:
        now = _clock_us(sk)
        if ((now - ca.last_ack) & U32) <= HYSTART_ACK_DELTA_US:
            ca.last_ack = now
            threshold = ca.delay_min >> 1  # SK_PACING_NONE: ACKs past delay_min/2
            if ((now - ca.round_start) & U32) > threshold:
                ca.found = True
                sk.snd_ssthresh = sk.snd_cwnd
    if HYSTART_DETECT & HYSTART_DELAY:
        ca.curr_rtt = min(ca.curr_rtt, delay)
        if ca.sample_cnt < HYSTART_MIN_SAMPLES:
            ca.sample_cnt += 1
        elif ca.curr_rtt > ca.delay_min + min(max(ca.delay_min >> 3, HYSTART_DELAY_MIN), HYSTART_DELAY_MAX):
            ca.found = True
            sk.snd_ssthresh = sk.snd_cwnd


def cubictcp_acked(sk, acked: int, rtt_us: int) -> None:
    """pkts_acked(): delay_min and HyStart from each ACK's RTT sample (-1: none)."""
    if rtt_us < 0:
        return
    ca = sk.ca_priv
    if ca.epoch_start and ((_jiffies(sk) - ca.epoch_start) & U32) < HZ:
        return  # right after fast recovery the samples are discarded
    delay = rtt_us or 1
    if ca.delay_min == 0 or ca.delay_min > delay:
        ca.delay_min = delay
    if not ca.found and tcp_in_slow_start(sk) and HYSTART:
        hystart_update(sk, delay)


cubictcp = TcpCongestionOps("cubic", init=cubictcp_init, ssthresh=cubictcp_recalc_ssthresh,
                            cong_avoid=cubictcp_cong_avoid, set_state=cubictcp_state, undo_cwnd=tcp_reno_undo_cwnd,
                            cwnd_event=cubictcp_cwnd_event, pkts_acked=cubictcp_acked, priv=Bictcp)


def cubictcp_register() -> None:
    tcp_register_congestion_control(cubictcp)
