"""The mock's congestion-control module boundary (ipv4/tcp_cong.py) with reno
and cubic (ipv4/tcp_cubic.py), pinned to net/ipv4/tcp_cong.c and tcp_cubic.c
and to what this machine's kernel refuses (docs/kernel-facts.md)."""
from __future__ import annotations

import errno

import pytest

from harness.mockkernel.ipv4 import tcp_cubic
from harness.mockkernel.ipv4.tcp_cong import tcp_assign_congestion_control, tcp_set_congestion_control
from harness.mockkernel.ipv4.tcp_sock import TCP_ESTABLISHED, TcpSock
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.target import sh
from harness.target import CommandError


def _socket(k: Kernel, congestion_control: str | None = None) -> TcpSock:
    sk = TcpSock(k)
    tcp_assign_congestion_control(sk)
    if congestion_control is not None:
        sk.state = TCP_ESTABLISHED
        tcp_set_congestion_control(sk, congestion_control)
    return sk


def test_reno_is_the_duts_default_as_dut_sysctls_set_it_on_both_targets():
    k = Kernel()
    assert sh(k, ["sysctl", "-n", "net.ipv4.tcp_congestion_control"]) == "reno\n"
    assert _socket(k).icsk_ca_ops.name == "reno"
    assert sh(k, ["sysctl", "-n", "net.ipv4.tcp_available_congestion_control"]) == "reno cubic\n"


def test_an_unknown_congestion_control_is_refused_with_enoent_and_bbr_is_not_modelled():
    k = Kernel()
    with pytest.raises(CommandError, match="No such file or directory"):
        sh(k, ["sysctl", "-w", "net.ipv4.tcp_congestion_control=vegas"])
    with pytest.raises(CommandError, match="bbr is not modelled by the mock kernel"):
        sh(k, ["sysctl", "-w", "net.ipv4.tcp_congestion_control=bbr"])
    assert sh(k, ["sysctl", "-n", "net.ipv4.tcp_congestion_control"]) == "reno\n"  # the old value stays
    sh(k, ["sysctl", "-w", "net.ipv4.tcp_congestion_control=cubic"])
    assert _socket(k).icsk_ca_ops.name == "cubic"
    with pytest.raises(OSError) as refused:
        tcp_set_congestion_control(_socket(k), "vegas")
    assert refused.value.errno == errno.ENOENT


def test_reno_halves_cwnd_on_loss_and_adds_one_segment_per_window_acked():
    sk = _socket(Kernel(), "reno")
    sk.snd_cwnd, sk.snd_ssthresh, sk.is_cwnd_limited = 10, 5, True
    assert sk.icsk_ca_ops.ssthresh(sk) == 5
    sk.icsk_ca_ops.cong_avoid(sk, 0, 10)
    assert sk.snd_cwnd == 11


def test_reno_slow_start_grows_cwnd_by_what_was_acked_up_to_ssthresh_then_avoids():
    sk = _socket(Kernel(), "reno")
    sk.snd_cwnd, sk.snd_ssthresh, sk.is_cwnd_limited = 10, 14, True
    sk.icsk_ca_ops.cong_avoid(sk, 0, 6)  # 4 up to ssthresh, 2 left for congestion avoidance
    assert (sk.snd_cwnd, sk.snd_cwnd_cnt) == (14, 2)


def test_cubic_ssthresh_after_a_loss_is_717_of_1024_of_cwnd_with_fast_convergence():
    sk = _socket(Kernel(), "cubic")
    sk.snd_cwnd = 100
    assert sk.icsk_ca_ops.ssthresh(sk) == 70
    assert sk.ca_priv.last_max_cwnd == 100
    sk.snd_cwnd = 80  # a second loss below W_max: fast convergence remembers less
    assert sk.icsk_ca_ops.ssthresh(sk) == 56
    assert sk.ca_priv.last_max_cwnd == 80 * (1024 + 717) // 2048


def test_cubic_returns_to_w_max_after_k_seconds_cbrt_of_w_max_times_0_3_over_0_4():
    # K = cbrt(W_max (1 - beta) / C) = cbrt(30 / 0.4) = 4.217 s, in 2^-10 s: 4318
    sk = _socket(Kernel(), "cubic")
    sk.snd_cwnd = 100
    sk.icsk_ca_ops.ssthresh(sk)
    sk.snd_cwnd, sk.snd_ssthresh, sk.is_cwnd_limited = 70, 70, True
    sk.icsk_ca_ops.cong_avoid(sk, 0, 1)
    assert sk.ca_priv.bic_K == pytest.approx(4318, rel=0.002)
    assert sk.ca_priv.bic_origin_point == 100


@pytest.mark.parametrize("a", [1, 7, 64, 1000, 123456, 2**30, 2681735677 * 40, 2**60])
def test_cubic_root_is_within_the_kernels_stated_error_of_the_true_cube_root(a):
    assert tcp_cubic.cubic_root(a) == pytest.approx(a ** (1 / 3), rel=0.02, abs=1)
