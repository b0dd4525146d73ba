"""iptables' rate matches on real frames, as iptables-nft 1.8.9 puts them in
the kernel (nft_compat): a RATEEST estimator (xt_RATEEST.c feeding
net/core/gen_estimator.c) read by -m rateest (xt_rateest.c), and hashlimit's
rate match (xt_hashlimit.c hashlimit_mt_common(), XT_HASHLIMIT_RATE_MATCH).

An estimator folds what it counted into its average only when its interval
ends (est_timer()), so a test sends a burst and then waits on the target's
clock (virtual on the mock) until a probe sees the rate, never a fixed sleep;
the rates asked for leave wide margins either way. Each counting rule is
named by a comment and read back with iptables-save -c
(harness.testing counted_by_iptables_comment()).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.testing import counted_by_iptables_comment, forward, matched_by, wait_until

pytestmark = pytest.mark.requires("nftables")


def add(target, *rules: str) -> None:
    for rule in rules:
        target.sh(f"iptables {rule}")


def iptables_matches(target, src_host, dst_host, l4, **ip_fields) -> set[str]:
    """The named iptables rules that counted a forward() from src_host to dst_host."""
    return matched_by(target, lambda: forward(target, src_host, dst_host, l4, **ip_fields),
                      counted_by_iptables_comment)


def test_rateest_sees_a_burst_once_its_interval_ends_and_forgets_it_as_the_average_decays(target, router):
    """RATEEST counts port 9's packets into `load` (250 ms interval, ewma_log 1);
    probes to port 7 ask `load` for more than 20 pps (busy) and less than 1
    (idle). 100 packets at once read as some 200 pps after the next tick,
    then the average halves each tick until it reads 0 again."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp --dport 9 -j RATEEST --rateest-name load --rateest-interval 250ms "
                "--rateest-ewmalog 500ms",
        "-A FORWARD -p udp --dport 7 -m rateest --rateest load --rateest-gt --rateest-pps 20 -m comment --comment busy",
        "-A FORWARD -p udp --dport 7 -m rateest --rateest load --rateest-lt --rateest-pps 1 -m comment --comment idle")

    def probe() -> set[str]:
        return iptables_matches(target, h0, h1, UDP(sport=1, dport=7))
    assert probe() == {"idle"}
    burst = h0.to_dut(dst=h1.ip, id=7) / UDP(sport=1, dport=9)
    target.send(h0.port, [burst] * 100)
    assert len(target.frames_left(h1.port, 100, "the burst, forwarded")) == 100
    assert wait_until(target, lambda: probe() == {"busy"}, timeout=3) is not None, "the burst never read as busy"
    assert wait_until(target, lambda: probe() == {"idle"}, timeout=8) is not None, "the average never decayed"


def test_hashlimit_rate_match_passes_burst_plus_rate_per_window_per_source(target, router):
    """--hashlimit-rate-match 5/min, burst 1: a window of 60 s that may
    count 1 + 5 packets of each source (rateinfo_init()), so 6 of 10 match;
    a second source has its own entry. The same rate without the rate match
    is a token bucket of 1 refilled every 12 s: 1 of 10."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp --dport 7 -m hashlimit --hashlimit-upto 5/min --hashlimit-burst 1 "
                "--hashlimit-mode srcip --hashlimit-name rm --hashlimit-rate-match -m comment --comment under",
        "-A FORWARD -p udp --dport 8 -m hashlimit --hashlimit-upto 5/min --hashlimit-burst 1 "
        "--hashlimit-mode srcip --hashlimit-name lim -m comment --comment limited")
    matched = {"under": 0, "limited": 0}
    for dport in (7, 8):
        for _ in range(10):
            for name in iptables_matches(target, h0, h1, UDP(sport=1, dport=dport)):
                matched[name] += 1
    for _ in range(2):
        for name in iptables_matches(target, h0, h1, UDP(sport=1, dport=7), src="10.0.0.3"):
            matched[name] += 1
    assert matched == {"under": 8, "limited": 1}


def test_rateest_compares_two_estimators(target, router):
    """--rateest1 A --rateest-gt --rateest-pps --rateest2 B: A's average
    above B's. A burst of 60 into A and 6 into B: once both ticks have come
    A reads ten times B, and stays above it as both halve each tick."""
    h0, h1 = router[0], router[1]
    add(target, *(f"-A FORWARD -p udp --dport {port} -j RATEEST --rateest-name {name} --rateest-interval 250ms "
                  "--rateest-ewmalog 500ms" for port, name in ((9, "A"), (10, "B"))),
        "-A FORWARD -p udp --dport 7 -m rateest --rateest1 A --rateest-gt --rateest-pps --rateest2 B "
        "-m comment --comment a-busier",
        "-A FORWARD -p udp --dport 7 -m rateest --rateest1 B --rateest-gt --rateest-pps --rateest2 A "
        "-m comment --comment b-busier")

    def probe() -> set[str]:
        return iptables_matches(target, h0, h1, UDP(sport=1, dport=7))
    assert probe() == set()  # both read 0: neither is greater
    for port, count in ((9, 60), (10, 6)):
        target.send(h0.port, [h0.to_dut(dst=h1.ip, id=7) / UDP(sport=1, dport=port)] * count)
        assert len(target.frames_left(h1.port, count, f"{count} packets to port {port}")) == count
    assert wait_until(target, lambda: probe() == {"a-busier"}, timeout=3) is not None, "A never read busier than B"
    assert probe() == {"a-busier"}
