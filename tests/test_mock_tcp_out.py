"""The mock's TCP send side (ipv4/tcp_output.py, tcp_timer.py, tcp_recovery.py,
tcp_cong.py, tcp_cubic.py), each test pinned to what Linux 6.18 does: values
read from the kernel's source or measured on this machine's kernel in a netns
(docs/kernel-facts.md, "TCP send side"), written out by hand here."""
from __future__ import annotations

import errno
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.mockkernel.core.snmp import SNMP4_NET_LIST
from harness.mockkernel.ipv4.tcp_cong import (TCP_CA_Loss, TCP_CA_Recovery, tcp_assign_congestion_control,
                                              tcp_init_congestion_control, tcp_set_congestion_control)
from harness.mockkernel.ipv4.tcp_output import (TCP_NAGLE_OFF, tcp_check_space, tcp_connect, tcp_send_delayed_ack,
                                                tcp_push_pending_frames, tcp_rearm_rto, tcp_select_initial_window,
                                                tcp_sendmsg_locked, tcp_sndbuf_expand, tcp_sync_mss)
from harness.mockkernel.ipv4.tcp_recovery import (FLAG_SND_UNA_ADVANCED, FLAG_SYN_ACKED, tcp_ack_tail, tcp_update_pacing_rate,
                                                  tcp_ack_update_rtt, tcp_highest_sack_seq, tcp_rtt_estimator,
                                                  tcp_set_rto)
from harness.mockkernel.ipv4.tcp_ipv4 import IPV4_SPECIFIC
from harness.mockkernel.ipv4.tcp_sock import TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT, TcpSock
from harness.mockkernel.ipv4.tcp_timer import tcp_init_xmit_timers, tcp_set_keepalive
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import ip_to_int
from harness.mockkernel.target import sh

DUT, PEER = "10.0.0.1", "10.0.0.2"
PEER_MAC = "02:00:00:00:00:02"
ISN = 1000
PEER_ISN = 5000


def _kernel(*sysctls: str) -> Kernel:
    k = Kernel()
    sh(k, ["ip", "addr", "add", f"{DUT}/24", "dev", "p0"])
    sh(k, ["ip", "neigh", "add", PEER, "lladdr", PEER_MAC, "dev", "p0", "nud", "permanent"])
    for setting in sysctls:
        sh(k, ["sysctl", "-qw", setting])
    return k


def _socket(k: Kernel) -> TcpSock:
    """A socket as tcp_v4_connect() leaves it before tcp_connect(): addresses,
    ports, the ISN and the IP ID counter chosen, default buffers."""
    sk = TcpSock(k, icsk_af_ops=IPV4_SPECIFIC)
    sk.sk_rcvbuf, sk.sk_sndbuf = 131072, 16384  # tcp_rmem[1], tcp_wmem[1]
    tcp_init_xmit_timers(sk)
    tcp_assign_congestion_control(sk)
    sk.saddr, sk.daddr, sk.sport, sk.dport = ip_to_int(DUT), ip_to_int(PEER), 40000, 80
    sk.write_seq, sk.inet_id = ISN, 555
    sk.state = TCP_SYN_SENT
    return sk


def _established(k: Kernel, srtt_us: int = 5000, sack: bool = True, window: int = 1 << 20,
                 congestion_control: str = "cubic") -> TcpSock:
    """A connection as the handshake leaves it (tcp_finish_connect()): the
    peer offered MSS 1460, SACK, timestamps and a large window; one RTT sample;
    the application picked `congestion_control` (TCP_CONGESTION)."""
    sk = _socket(k)
    tcp_set_congestion_control(sk, congestion_control)
    tcp_connect(sk)
    k.nics["p0"].wire.clear()
    sk.rtx_queue.clear()  # the SYN-ACK acknowledged the SYN
    sk.packets_out = sk.sk_wmem_queued = 0
    tcp_rearm_rto(sk)
    sk.state = TCP_ESTABLISHED
    sk.snd_una = sk.snd_nxt = sk.write_seq = sk.pushed_seq = sk.snd_sml = ISN + 1
    sk.rcv_nxt = sk.rcv_wup = sk.copied_seq = PEER_ISN + 1
    sk.rx_opt.tstamp_ok = sk.rx_opt.wscale_ok = True
    sk.rx_opt.sack_ok = sack
    sk.rx_opt.snd_wscale = 7
    sk.rx_opt.mss_clamp = 1460
    sk.snd_wnd = sk.max_window = window
    sk.tcp_header_len = 32
    tcp_sync_mss(sk, 1500)
    tcp_ack_update_rtt(sk, FLAG_SYN_ACKED, srtt_us, -1, srtt_us)  # the handshake's sample
    sk.retrans_stamp = 0.0
    tcp_init_congestion_control(sk)
    tcp_sndbuf_expand(sk)
    return sk


def _frames(k: Kernel, until: float) -> list[tuple[float, Ether]]:
    """Every TCP frame p0 sends until `until`, with the virtual time it left."""
    out, wire, clock = [], k.nics["p0"].wire, k.clock

    def collect() -> None:
        out.extend((clock.now, Ether(frame)) for frame in wire if Ether(frame).haslayer(TCP))
        wire.clear()

    collect()
    while (expiry := clock.next_expiry()) is not None and expiry <= until:
        clock.advance_to(expiry)
        collect()
    clock.advance_to(until)
    collect()
    return out


def _ack(sk: TcpSock, ack: int, sack_blocks=()) -> int:
    """What tcp_rcv_established() does with a pure ACK from the peer: tcp_ack()
    (tcp_input.py's part written out: snd_una; then the send side's tail),
    then tcp_data_snd_check()."""
    prior_snd_una, prior_packets = sk.snd_una, sk.packets_out
    prior_fack = tcp_highest_sack_seq(sk)
    flag = 0
    if ack != prior_snd_una:
        flag |= FLAG_SND_UNA_ADVANCED
        sk.bytes_acked += ack - prior_snd_una
        sk.snd_una = ack
    flag = tcp_ack_tail(sk, ack, prior_snd_una, prior_fack, prior_packets, flag, sack_blocks)
    tcp_push_pending_frames(sk)
    tcp_check_space(sk)
    return flag


# --- the SYN

def test_syn_options_are_mss_sackperm_timestamp_nop_wscale_with_window_64240():
    k = _kernel()
    k.clock.advance(1.5)
    tcp_connect(_socket(k))
    (when, syn), = _frames(k, 1.5)
    th = bytes(syn[TCP])
    # measured: MSS 1460, SACK-permitted in the timestamp's NOPs, TSval (ms clock), TSecr 0, NOP, wscale 10
    assert th[20:40] == bytes.fromhex("020405b4" "0402080a") + struct.pack("!II", 1500, 0) + bytes.fromhex("0103030a")
    assert (syn[TCP].flags, syn[TCP].window, syn[TCP].seq, syn[TCP].ack) == ("S", 64240, ISN, 0)
    assert (syn[IP].flags, syn[IP].ttl, syn[IP].tos, syn[IP].id) == ("DF", 64, 0, 555)


def test_syn_without_timestamps_carries_sackperm_behind_two_nops():
    k = _kernel("net.ipv4.tcp_timestamps=0")
    tcp_connect(_socket(k))
    (_, syn), = _frames(k, 0)
    assert bytes(syn[TCP])[20:32] == bytes.fromhex("020405b4" "01010402" "0103030a")


def test_syn_retransmits_1s_apart_for_the_linear_timeouts_then_doubles_and_gives_up_etimedout():
    # measured with tcp_syn_retries 3: SYNs at 0 1 2 3 4 5 7 11 s, connect() fails with ETIMEDOUT
    k = _kernel("net.ipv4.tcp_syn_retries=3")
    sk = _socket(k)
    tcp_connect(sk)
    syns = _frames(k, 18.9)
    assert [when for when, _ in syns] == [0, 1, 2, 3, 4, 5, 7, 11]
    assert [frame[IP].id for _, frame in syns] == list(range(555, 563))
    assert sk.state == TCP_SYN_SENT
    _frames(k, 19)
    assert (sk.state, sk.err) == (TCP_CLOSE, errno.ETIMEDOUT)


@pytest.mark.parametrize(("space", "mss", "expected"), [
    (65536, 1460, (64240, 65535 << 10, 10)),  # connect(): tcp_rmem[1] 131072 halved, 44 MSS
    (65536, 1448, (65160, 65535 << 10, 10)),  # the SYN-ACK's when the SYN offered timestamps (measured)
    (2304, 1460, (1460, 65535 << 10, 10)),
])
def test_initial_window_is_whole_mss_of_half_the_buffer_and_scale_fits_tcp_rmem_max(space, mss, expected):
    assert tcp_select_initial_window(_kernel(), space, mss, 0, True) == expected


def test_initial_window_without_window_scaling_has_shift_0_and_clamp_65535():
    assert tcp_select_initial_window(_kernel(), 65536, 1460, 0, False) == (64240, 65535, 0)


# --- RTT and RTO

def test_first_rtt_sample_of_1756us_gives_rto_204ms_as_ss_showed():
    k = _kernel()
    sk = _socket(k)
    tcp_rtt_estimator(sk, 1756)
    tcp_set_rto(sk)
    # srtt << 3, mdev 2 * rtt, rttvar at least the 200 ms minimum; 201756 us is 50.4 jiffies -> 51 (4 ms each)
    assert (sk.srtt_us, sk.mdev_us, sk.rttvar_us) == (14048, 3512, 200000)
    assert sk.rto == pytest.approx(0.204)


def test_rtt_estimator_moves_srtt_an_eighth_towards_each_sample():
    sk = _socket(_kernel())
    tcp_rtt_estimator(sk, 8000)
    tcp_rtt_estimator(sk, 16000)
    assert sk.srtt_us == 8 * 8000 + (16000 - 8000)  # srtt 9 ms


# --- established data

def test_a_write_sends_ten_segments_then_a_loss_probe_then_rtos_doubling_from_the_probe():
    k = _kernel()
    sk = _established(k, srtt_us=5000)
    # as on Linux: a 65160-byte skb (45 MSS), 10 of its MSS sent, its rest filled up to 45 MSS again
    assert tcp_sendmsg_locked(sk, b"x" * 100000) == 79640
    frames = _frames(k, 2.0)
    first = frames[:10]
    assert [f[TCP].seq - ISN - 1 for _, f in first] == [1448 * i for i in range(10)]
    assert all(len(f[TCP].payload) == 1448 and when == 0 for when, f in first)
    # the tail loss probe: 2 * srtt + 2 ms with new data (the 11th segment), then the RTO (205 ms:
    # srtt 5 ms + rttvar 200 ms, 52 jiffies = 208 ms) from the probe, doubling
    probe_time, probe = frames[10]
    assert probe_time == pytest.approx(0.012)
    assert probe[TCP].seq == ISN + 1 + 1448 * 10
    rtos = frames[11:]
    assert [round(when - probe_time, 3) for when, _ in rtos] == [0.208, 0.624, 1.456]
    assert all(f[TCP].seq == ISN + 1 for _, f in rtos)
    assert sk.icsk_ca_state == TCP_CA_Loss and sk.snd_cwnd == 1


def test_segments_carry_ack_timestamps_and_consecutive_ip_ids():
    k = _kernel()
    sk = _established(k)
    k.clock.advance(0.25)
    sk.rx_opt.ts_recent = 77
    tcp_sendmsg_locked(sk, b"y" * 3000)
    frames = [f for _, f in _frames(k, 0.25)]
    assert [(f[TCP].flags, len(f[TCP].payload)) for f in frames] == [("A", 1448), ("A", 1448), ("PA", 104)]
    assert all(f[TCP].ack == PEER_ISN + 1 and dict(f[TCP].options)["Timestamp"] == (250, 77) for f in frames)
    assert [f[IP].id for f in frames] == [555 + 1, 555 + 2, 555 + 3]  # the SYN took 555


def test_cumulative_acks_grow_cwnd_in_slow_start_and_release_more_segments():
    k = _kernel()
    sk = _established(k)
    tcp_sendmsg_locked(sk, b"z" * 100000)
    _frames(k, 0)
    k.clock.advance(0.005)
    _ack(sk, ISN + 1 + 2 * 1448)
    assert (sk.packets_out, sk.snd_cwnd) == (12, 12)
    assert len(_frames(k, 0.005)) == 4  # 2 ACKed + 2 of slow start's growth


def test_three_sacked_segments_above_a_hole_start_sack_recovery_with_a_fast_retransmit():
    k = _kernel()
    sk = _established(k)
    tcp_sendmsg_locked(sk, b"w" * 14480)
    _frames(k, 0)
    k.clock.advance(0.005)
    base = ISN + 1
    _ack(sk, base + 1448, [(base + 2 * 1448, base + 5 * 1448)])
    assert sk.icsk_ca_state == TCP_CA_Recovery
    assert sk.snd_ssthresh == 10 * 717 // 1024  # cubic's beta 717/1024
    (_, rexmit), = _frames(k, 0.005)
    assert rexmit[TCP].seq == base + 1448
    assert k.mib.net_statistics[SNMP4_NET_LIST.index("TCPSackRecovery")] == 1


def test_nagle_holds_a_small_segment_while_an_earlier_small_one_is_unacked_and_nodelay_does_not():
    k = _kernel()
    sk = _established(k)
    tcp_sendmsg_locked(sk, b"a" * 100)
    tcp_sendmsg_locked(sk, b"b" * 100)
    assert [len(f[TCP].payload) for _, f in _frames(k, 0)] == [100]
    sk.nonagle = TCP_NAGLE_OFF
    tcp_sendmsg_locked(sk, b"c" * 100)
    assert [len(f[TCP].payload) for _, f in _frames(k, 0)] == [200]


def test_a_zero_window_is_probed_with_an_old_sequence_ack_backing_off():
    k = _kernel()
    sk = _established(k, window=0)
    tcp_sendmsg_locked(sk, b"p" * 1000)
    probes = _frames(k, 3.0)
    # the probe timer starts at max(rto, 200 ms), then doubles: bare ACKs at snd_una - 1
    assert [round(when, 3) for when, _ in probes] == [0.208, 0.624, 1.456]
    assert all(f[TCP].seq == ISN and len(f[TCP].payload) == 0 for _, f in probes)


def test_acking_everything_frees_exactly_what_the_send_queue_charged():
    k = _kernel()
    sk = _established(k)
    assert sk.sk_sndbuf == 46080  # tcp_sndbuf_expand(): 2 x 10 x (2048 + 256)
    sent = tcp_sendmsg_locked(sk, b"q" * 200000)
    assert 46080 <= sk.sk_wmem_queued < 46080 + 65160 + 1024  # one skb past the limit at most
    while sk.snd_una != sk.write_seq:
        _frames(k, k.clock.now)
        k.clock.advance(0.005)
        _ack(sk, sk.snd_nxt)
    assert (sk.snd_una, sk.sk_wmem_queued, sk.packets_out) == (ISN + 1 + sent, 0, 0)


def test_one_sacked_segment_marks_the_earlier_ones_lost_after_rtt_plus_a_quarter_min_rtt():
    # RACK: reo_wnd = min_rtt / 4 = 1.25 ms below the dupthresh; the timer rounds up to a jiffy
    # and adds TCP_TIMEOUT_MIN (2 jiffies): 12 ms after the SACK the hole is retransmitted
    k = _kernel()
    sk = _established(k)
    tcp_sendmsg_locked(sk, b"r" * 4 * 1448)
    _frames(k, 0)
    k.clock.advance(0.005)
    base = ISN + 1
    _ack(sk, base, [(base + 3 * 1448, base + 4 * 1448)])
    assert sk.icsk_ca_state != TCP_CA_Recovery
    retransmitted = _frames(k, 0.1)
    assert retransmitted[0][0] == pytest.approx(0.017)
    assert retransmitted[0][1][TCP].seq == base
    assert sk.icsk_ca_state == TCP_CA_Recovery


def test_without_sack_three_duplicate_acks_retransmit_the_head():
    k = _kernel()
    sk = _established(k, sack=False)
    tcp_sendmsg_locked(sk, b"d" * 8 * 1448)
    _frames(k, 0)
    k.clock.advance(0.005)
    base = ISN + 1
    _ack(sk, base + 1448)
    _ack(sk, base + 1448)
    _ack(sk, base + 1448)
    assert _frames(k, 0.005) == []
    _ack(sk, base + 1448)
    (_, rexmit), = _frames(k, 0.005)
    assert rexmit[TCP].seq == base + 1448
    assert (sk.icsk_ca_state, sk.snd_ssthresh) == (TCP_CA_Recovery, 10 * 717 // 1024)
    assert k.mib.net_statistics[SNMP4_NET_LIST.index("TCPRenoRecovery")] == 1


def test_a_delayed_ack_leaves_after_ato_40ms_and_counts_in_delayedacks():
    k = _kernel()
    sk = _established(k)
    sk.icsk_ack.ato = 0.04
    k.clock.advance(1.0)
    tcp_send_delayed_ack(sk)
    (when, ack), = _frames(k, 2.0)
    assert when == pytest.approx(1.04)
    assert (ack[TCP].flags, ack[TCP].ack, len(ack[TCP].payload)) == ("A", PEER_ISN + 1, 0)
    assert k.mib.net_statistics[SNMP4_NET_LIST.index("DelayedACKs")] == 1


def test_a_routes_advmss_metric_is_the_mss_the_syn_advertises_and_ip_route_shows_it():
    # measured: `ip route add 10.9.9.0/24 dev p0 advmss 800 mtu 1400` lists "mtu 1400 advmss 800",
    # JSON metrics [{"mtu":1400,"advmss":800}]
    k = _kernel()
    sh(k, ["ip", "route", "add", f"{PEER}/32", "dev", "p0", "advmss", "800", "mtu", "1400"])
    assert sh(k, ["ip", "route", "show", f"{PEER}/32"]) == f"{PEER} dev p0 scope link mtu 1400 advmss 800 \n"
    assert '"metrics":[{"mtu":1400,"advmss":800}]' in sh(k, ["ip", "-j", "route", "show", f"{PEER}/32"])
    tcp_connect(_socket(k))
    (_, syn), = _frames(k, 0)
    assert dict(syn[TCP].options)["MSS"] == 800


def test_keepalive_probes_an_idle_connection_then_resets_it_with_etimedout():
    # measured with tcp_keepalive_time 2, intvl 1, probes 2: bare ACKs at snd_una - 1 at 2 s and 3 s,
    # RST|ACK at snd_nxt at 4 s, recv() fails with ETIMEDOUT
    k = _kernel("net.ipv4.tcp_keepalive_time=2", "net.ipv4.tcp_keepalive_intvl=1", "net.ipv4.tcp_keepalive_probes=2")
    sk = _established(k)
    tcp_set_keepalive(sk, True)
    sk.keepalive = True  # SOCK_KEEPOPEN, set by sock_setsockopt() after tcp_set_keepalive()
    frames = _frames(k, 10)
    assert [(when, f[TCP].flags, f[TCP].seq) for when, f in frames] == [
        (2.0, "A", ISN), (3.0, "A", ISN), (4.0, "RA", ISN + 1)]
    assert (sk.state, sk.err) == (TCP_CLOSE, errno.ETIMEDOUT)


def test_pacing_rate_is_twice_mss_times_cwnd_over_srtt_in_slow_start_as_ss_shows_it():
    # the lab's child (mss 1400, cwnd 10, srtt 11.284 ms): ss printed pacing_rate 19851112bps
    k = _kernel()
    sk = _established(k)
    sk.mss_cache, sk.srtt_us = 1400, 11284 << 3
    tcp_update_pacing_rate(sk)
    assert sk.sk_pacing_rate * 8 == 19851112


def test_a_connection_is_app_limited_until_a_write_fills_cwnd():
    k = _kernel()
    sk = _established(k)
    assert sk.rate_app_limited  # tcp_init_sock()
    tcp_sendmsg_locked(sk, b"s" * 100)  # less than an MSS: the application limits
    _frames(k, 0)
    k.clock.advance(0.005)
    _ack(sk, ISN + 101)
    assert sk.rate_app_limited
    tcp_sendmsg_locked(sk, b"f" * 60000)  # more than cwnd takes; what was in flight at the write is the bubble
    _frames(k, 0.005)
    k.clock.advance(0.005)
    _ack(sk, sk.snd_una + 2 * 1448)
    assert sk.rate_app_limited and not sk.app_limited  # the bubble is delivered: later segments are cwnd-limited
    _frames(k, 0.01)
    k.clock.advance(0.005)
    _ack(sk, sk.snd_nxt)
    assert not sk.rate_app_limited
