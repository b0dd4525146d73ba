"""The rate estimator family and hashlimit's rate match on the mock:
-j RATEEST (xt_RATEEST.c) feeding a gen_estimator (net/core/gen_estimator.c
est_timer()), -m rateest (xt_rateest.c xt_rateest_mt()), and -m hashlimit
--hashlimit-rate-match (xt_hashlimit.c hashlimit_mt_common()).

The saved, listed and refused texts are what iptables-nft 1.8.9 printed for the
same commands in a network namespace (recorded by hand into this file); the
rates are worked out by hand from est_timer(): a window of HZ/4 = 62 jiffies
(248 ms at HZ 250) for a 250 ms interval, the growth shifted left by
10 - intvl_log and folded in with weight 2^-ewma_log, read back >> 8.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN
from harness.mockkernel.target import sh
from harness.target import CommandError
from harness.traffic import Profile, Rate, Stream
from tests.test_linerate_engine import forwarding_target, udp_frame
from tests.test_nft import hook, packet

RATEEST_RE1 = "-j RATEEST --rateest-name RE1 --rateest-interval 250ms --rateest-ewmalog 500ms"


def iptables(k: Kernel, rule: str) -> str:
    return sh(k, ["iptables", *rule.split()])


def refusal(k: Kernel, rule: str) -> tuple[int, str]:
    with pytest.raises(CommandError) as info:
        iptables(k, rule)
    return info.value.returncode, str(info.value).split("failed: ", 1)[1].split("\n")[0]


def saved(k: Kernel) -> list[str]:
    return [line for line in sh(k, ["iptables-save"]).splitlines() if line.startswith("-A")]


def send(k: Kernel, dport: int, count: int = 1) -> list[int]:
    """`count` UDP packets of 28 bytes to port `dport` through INPUT: their verdicts."""
    return [hook(k, packet(k, IP(dst="10.0.0.1") / UDP(sport=1, dport=dport)), NF_INET_LOCAL_IN)
            for _ in range(count)]


# ------------------------------------------------------------------ RATEEST

@pytest.mark.parametrize("given, saved_as", [
    ("--rateest-interval 250ms --rateest-ewmalog 500ms", "--rateest-interval 250.0ms --rateest-ewmalog 500.0ms"),
    ("--rateest-interval 8s --rateest-ewmalog 1000s", "--rateest-interval 8.0s --rateest-ewmalog 512.0s"),
    ("--rateest-interval 1 --rateest-ewmalog 10", "--rateest-interval 250.0ms --rateest-ewmalog 2.0s"),
    ("--rateest-interval 2s --rateest-ewmalog 3s", "--rateest-interval 2.0s --rateest-ewmalog 4.0s"),
    ("--rateest-interval 500ms --rateest-ewmalog 1000000s", "--rateest-interval 500.0ms --rateest-ewmalog 2048.0s"),
    ("--rateest-interval 0.5S --rateest-ewmalog 2SECS", "--rateest-interval 500.0ms --rateest-ewmalog 2.0s"),
    ("--rateest-interval 100us --rateest-ewmalog 0.5s", "--rateest-interval 250.0ms --rateest-ewmalog 1024.0s"),
    ("--rateest-interval 8s --rateest-ewmalog 8000s", "--rateest-interval 8.0s --rateest-ewmalog 2048.0s"),
])
def test_rateest_interval_and_ewmalog_save_as_the_powers_of_two_the_kernel_gets(given, saved_as):
    """RATEEST_final_check(): the interval rounded up to 250 ms << n, the
    ewma_log whose time constant fits; times held in 32 bits (1000000s wraps)."""
    k = Kernel()
    iptables(k, f"-A INPUT -j RATEEST --rateest-name R {given}")
    assert saved(k) == [f"-A INPUT -j RATEEST --rateest-name R {saved_as}"]


@pytest.mark.parametrize("rule, message", [
    ("-j RATEEST --rateest-name R --rateest-interval 9s --rateest-ewmalog 10s", "RATEEST: interval value is too large"),
    ("-j RATEEST --rateest-name R --rateest-interval 1x --rateest-ewmalog 10", 'RATEEST: bad interval value "1x"'),
    ("-j RATEEST --rateest-name R --rateest-interval 1s --rateest-ewmalog 10q", 'RATEEST: bad ewmalog value "10q"'),
    ("-j RATEEST --rateest-name R --rateest-interval 1s", "RATEEST: ewmalog value is out of range"),
    ("-j RATEEST --rateest-interval 1s --rateest-ewmalog 3s", 'RATEEST: option "--rateest-name" must be specified'),
    ("-m rateest ! --rateest RE1 --rateest-lt --rateest-pps 3", "rateest: rateest can't be inverted"),
    ("-m rateest --rateest RE1 --rateest1 RE1 --rateest-lt --rateest-pps 3", "rateest: can't specify --rateest1 twice"),
    ("-m rateest --rateest RE1 --rateest-lt ! --rateest-pps 3", "rateest: rateest-pps can't be inverted"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-pps 3 --rateest-pps2 4",
     "rateest: can't specify --rateest-pps2 twice"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-lt --rateest-pps 3", "rateest: can't specify lt/gt/eq twice"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-pps x3", "rateest: could not parse pps `x3'"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-bps 3zz", "rateest: could not parse rate `3zz'"),
    ("-m rateest --rateest RE1 ! --rateest-delta --rateest-gt --rateest-bps 3", "rateest: rateest-delta can't be inverted"),
    ("-m rateest --rateest RE1 --rateest-eq --rateest-bps -5", 'unknown option "-5"'),
    ("-m rateest --rateest", 'option "--rateest" requires an argument'),
])
def test_rateest_options_iptables_refuses_are_refused_with_its_message(rule, message):
    k = Kernel()
    assert refusal(k, f"-A INPUT {rule}") == (2, f"iptables v1.8.9 (nf_tables): {message}")


@pytest.mark.parametrize("given, saved_as, listed", [
    ("--rateest RE1 ! --rateest-gt --rateest-bps 3Mbit --rateest-pps 7",
     "--rateest RE1 ! --rateest-gt --rateest-bps 3000Kbit ! --rateest-gt --rateest-pps 7",
     "rateest match RE1 bps 375000 ! gt pps ! gt 7"),
    ("--rateest RE1 --rateest-eq --rateest-bps 12GBps", "--rateest RE1 --rateest-eq --rateest-bps 27281Mbit",
     "rateest match RE1 bps 3410065408 eq"),
    ("--rateest RE1 --rateest-eq --rateest-bps 1.5kibit", "--rateest RE1 --rateest-eq --rateest-bps 1536bit",
     "rateest match RE1 bps 192 eq"),
    ("--rateest RE1 --rateest-lt --rateest-gt --rateest-pps 3", "--rateest RE1 --rateest-gt --rateest-pps 3",
     "rateest match RE1 pps gt 3"),
    ("--rateest1 RE1 --rateest-gt --rateest-pps --rateest2 RE1", "--rateest1 RE1 --rateest-gt --rateest-pps --rateest2 RE1",
     "rateest match RE1 pps gt RE1 pps"),
    ("--rateest-delta --rateest1 RE1 --rateest-bps1 1mbit --rateest-gt --rateest-bps2 2mbit --rateest2 RE1 "
     "--rateest-pps1 3 --rateest-pps2 4",
     "--rateest-delta --rateest1 RE1 --rateest-bps1 1000Kbit --rateest-gt --rateest-bps2 2000Kbit --rateest-pps1 3 "
     "--rateest-gt --rateest-pps2 4 --rateest2 RE1",
     "rateest match RE1 delta bps 125000 pps 3 gt RE1 bps 250000 pps 4"),
])
def test_rateest_saves_and_lists_as_libxt_rateest_prints(given, saved_as, listed):
    """rateest_save(): rates in bits (Kbit, Mbit past 10^6), inverted modes
    before each rate; rateest_print() with -n: bytes per second, modes where
    it puts them."""
    k = Kernel()
    iptables(k, f"-A INPUT {RATEEST_RE1}")
    iptables(k, f"-A INPUT -m rateest {given}")
    assert saved(k)[1] == f"-A INPUT -m rateest {saved_as}"
    assert sh(k, ["iptables", "-L", "INPUT", "-n"]).splitlines()[3].endswith(f"0.0.0.0/0            {listed}")


def test_nft_lists_rateest_and_RATEEST_as_compat_extensions():
    k = Kernel()
    iptables(k, f"-A INPUT {RATEEST_RE1}")
    iptables(k, "-A INPUT -m rateest --rateest RE1 --rateest-lt --rateest-bps 8bit")
    assert ("\t\tcounter packets 0 bytes 0 xt target RATEEST\n\t\txt match rateest counter packets 0 bytes 0\n"
            in sh(k, ["nft", "list", "ruleset"]))


def test_a_rateest_match_needs_its_estimators_while_a_rule_holds_them():
    """xt_rateest_mt_checkentry(): ENOENT for an estimator no rule holds, EINVAL
    without bps or pps, or lt/gt/eq; xt_rateest_tg_checkentry(): EINVAL for a
    name held with other parameters. A match keeps the estimator after its
    RATEEST rule is gone; ip6tables finds it too (one table per namespace)."""
    k = Kernel()
    enoent = (4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain INPUT")
    einval = (4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")
    assert refusal(k, "-A INPUT -m rateest --rateest RE1 --rateest-lt --rateest-pps 3") == enoent
    iptables(k, f"-A INPUT {RATEEST_RE1}")
    assert refusal(k, "-A INPUT -m rateest --rateest RE1 --rateest-pps 3") == einval
    assert refusal(k, "-A INPUT -m rateest --rateest RE1") == einval
    assert refusal(k, "-A INPUT -m rateest --rateest1 RE1 --rateest-gt --rateest-pps --rateest2 NOPE") == enoent
    assert refusal(k, "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 1s --rateest-ewmalog 4s") == einval
    assert refusal(k, "-I INPUT -m rateest --rateest NOPE --rateest-gt --rateest-pps 3") == \
        (4, enoent[1].replace("RULE_APPEND", "RULE_INSERT"))
    iptables(k, "-A INPUT -m rateest --rateest RE1 --rateest-lt --rateest-pps 3")
    iptables(k, f"-D INPUT {RATEEST_RE1}")
    iptables(k, "-A INPUT -m rateest --rateest RE1 --rateest-gt --rateest-pps 3")
    sh(k, ["ip6tables", "-A", "INPUT", "-m", "rateest", "--rateest", "RE1", "--rateest-gt", "--rateest-pps", "3"])
    assert refusal(k, "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 1s --rateest-ewmalog 4s") == einval
    iptables(k, "-F INPUT")
    sh(k, ["ip6tables", "-F", "INPUT"])
    assert refusal(k, "-A INPUT -m rateest --rateest RE1 --rateest-gt --rateest-pps 3") == enoent
    iptables(k, "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 1s --rateest-ewmalog 4s")


def test_a_flushing_restore_finds_the_estimators_the_rules_it_replaces_still_hold():
    """iptables-save | iptables-restore of a match in INPUT and its RATEEST in
    FORWARD: the old rules hold the estimator until the batch commits, so the
    match (restored first) finds it; after a flush nothing holds it and the
    restore is refused as iptables-nft reports a batch error: the line of the
    rule, status 4."""
    k = Kernel()
    iptables(k, f"-A FORWARD {RATEEST_RE1}")
    iptables(k, "-A INPUT -m rateest --rateest RE1 --rateest-lt --rateest-pps 3")
    ruleset = sh(k, ["iptables-save"])
    sh(k, ["iptables-restore"], ruleset)
    assert len(saved(k)) == 2
    iptables(k, "-F")
    with pytest.raises(CommandError) as info:
        sh(k, ["iptables-restore"], ruleset)
    assert (info.value.returncode, str(info.value).split("failed: ", 1)[1]) == (
        4, "iptables-restore v1.8.9 (nf_tables): \nline 6: RULE_APPEND failed (No such file or directory): "
           "rule in chain INPUT")


def test_est_timer_folds_each_window_into_the_average_with_weight_one_half():
    """50 packets of 28 bytes before the first tick: 50 << 10 >> 1 = 25600,
    read as 100 pps; 1400 bytes give 2800 B/s (22400 bit). The next tick,
    an idle window, halves both: 50 pps, 1400 B/s."""
    k = Kernel()
    iptables(k, f"-A INPUT -p udp --dport 9 {RATEEST_RE1}")
    for port, test in ((7, "--rateest-eq --rateest-pps 100"), (8, "--rateest-eq --rateest-bps 22400bit"),
                       (6, "--rateest-eq --rateest-pps 50"), (5, "--rateest-eq --rateest-bps 11200bit"),
                       (4, "--rateest-lt --rateest-pps 1")):
        iptables(k, f"-A INPUT -p udp --dport {port} -m rateest --rateest RE1 {test} -j DROP")

    def matching() -> list[int]:
        return [port for port in (7, 8, 6, 5, 4) if send(k, port) == [NF_DROP]]
    send(k, 9, 50)
    assert matching() == [4]  # no tick yet: nothing estimated
    k.advance(0.25)
    assert matching() == [7, 8]
    k.advance(0.25)
    assert matching() == [6, 5]


def test_rateest_gt_pps_matches_once_a_steady_rate_has_been_estimated():
    """40 pps steady: nothing estimated before the first 248 ms window
    ends; then the average climbs (20, 30, 35... with weight 1/2) and
    settles near 40, past 30 and under 50, for as long as the rate holds."""
    k = Kernel()
    iptables(k, f"-A INPUT -p udp --dport 9 {RATEEST_RE1}")
    iptables(k, "-A INPUT -p udp --dport 7 -m rateest --rateest RE1 --rateest-gt --rateest-pps 30 -j DROP")
    iptables(k, "-A INPUT -p udp --dport 8 -m rateest --rateest RE1 --rateest-lt --rateest-pps 50 -j DROP")
    seen = []
    for tick in range(80):  # 2 s at 40 pps
        send(k, 9)
        if tick in (5, 79):
            seen.append((send(k, 7), send(k, 8)))
        k.advance(0.025)
    assert seen == [([NF_ACCEPT], [NF_DROP]), ([NF_DROP], [NF_DROP])]


def test_rateest_compares_two_estimators_and_deltas():
    """REL: RE1's pps (40) against RE2's (10); DELTA: 50 less RE1's rate, 10,
    is less than 20; RE2's, 40, is not."""
    k = Kernel()
    iptables(k, f"-A INPUT -p udp --dport 9 {RATEEST_RE1}")
    iptables(k, "-A INPUT -p udp --dport 10 -j RATEEST --rateest-name RE2 --rateest-interval 250ms "
                "--rateest-ewmalog 500ms")
    rules = {7: "--rateest1 RE1 --rateest-gt --rateest-pps --rateest2 RE2",
             8: "--rateest1 RE2 --rateest-gt --rateest-pps --rateest2 RE1",
             6: "--rateest-delta --rateest RE1 --rateest-pps1 50 --rateest-lt --rateest-pps2 20",
             5: "--rateest-delta --rateest RE2 --rateest-pps1 50 --rateest-lt --rateest-pps2 20"}
    for port, test in rules.items():
        iptables(k, f"-A INPUT -p udp --dport {port} -m rateest {test} -j DROP")
    for tick in range(80):
        send(k, 9)
        if tick % 4 == 0:
            send(k, 10)
        k.advance(0.025)
    assert {port: send(k, port) for port in rules} == {7: [NF_DROP], 8: [NF_ACCEPT], 6: [NF_DROP], 5: [NF_ACCEPT]}


# ------------------------------------------------------------------ hashlimit --hashlimit-rate-match

@pytest.mark.parametrize("given, saved_as, nft", [
    ("--hashlimit-upto 40/min --hashlimit-rate-match --hashlimit-name t1",
     "--hashlimit-upto 40/sec --hashlimit-burst 5 --hashlimit-name t1 --hashlimit-htable-expire 60000 "
     "--hashlimit-rate-match --hashlimit-rate-interval 60",
     "meter t1 { (null) timeout 60s limit rate 40/second }"),
    ("--hashlimit-upto 40kb/s --hashlimit-burst 100kb --hashlimit-rate-match --hashlimit-name t4",
     "--hashlimit-upto 40kb/s --hashlimit-burst 120kb --hashlimit-name t4 --hashlimit-rate-match",
     "meter t4 { (null) timeout 60s limit rate 40 kbytes/second burst 120 kbytes }"),
    ("--hashlimit-upto 5/sec --hashlimit-rate-interval 12ab --hashlimit-rate-match --hashlimit-name t5",
     "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name t5 --hashlimit-rate-match "
     "--hashlimit-rate-interval 12", "meter t5 { (null) limit rate 5/second }"),
    ("--hashlimit-upto 5/sec --hashlimit-rate-interval 99999999999 --hashlimit-rate-match --hashlimit-name t20",
     "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name t20 --hashlimit-rate-match "
     "--hashlimit-rate-interval 1215752191", "meter t20 { (null) limit rate 5/second }"),
    ("--hashlimit-upto 60/min --hashlimit-name t10",
     "--hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name t10 --hashlimit-htable-expire 60000",
     "xt match hashlimit"),
    ("--hashlimit-upto 40kb/s --hashlimit-mode dstip --hashlimit-name t21",
     "--hashlimit-upto 40kb/s --hashlimit-mode dstip --hashlimit-name t21",
     "meter t21 { ip daddr timeout 15s limit rate 40 kbytes/second }"),
])
def test_hashlimit_saves_and_translates_as_libxt_hashlimit_prints(given, saved_as, nft):
    """A rate match keeps its packet rate per second (the unit becomes the
    window, the expiry saved); print_rate() picks the unit; the meter's
    keys end in the rate match's mode bit, past the names' array: (null)."""
    k = Kernel()
    iptables(k, f"-A INPUT -m hashlimit {given}")
    assert saved(k) == [f"-A INPUT -m hashlimit {saved_as}"]
    assert f"\t\t{nft} counter packets 0 bytes 0\n" in sh(k, ["nft", "list", "ruleset"])


@pytest.mark.parametrize("rule, status, message", [
    ("--hashlimit-upto 5/ --hashlimit-name t", 2, 'hashlimit: Bad value for "--hashlimit-upto" option: "5/"'),
    ("--hashlimit-upto 2000000/sec --hashlimit-name t", 2, 'Rate too fast "2000000/sec"'),
    ("--hashlimit-upto 5/sec --hashlimit-rate-interval 0 --hashlimit-rate-match --hashlimit-name t", 2,
     'hashlimit: Bad value for "--hashlimit-rate-interval" option: "0"'),
    ("--hashlimit-upto 5/sec --hashlimit-htable-expire 0 --hashlimit-name t", 4,
     " RULE_APPEND failed (Invalid argument): rule in chain INPUT"),
])
def test_hashlimit_refusals_are_iptables_and_the_kernels(rule, status, message):
    k = Kernel()
    assert refusal(k, f"-A INPUT -m hashlimit {rule}") == (status, f"iptables v1.8.9 (nf_tables): {message}")


def test_hashlimit_rate_match_passes_burst_plus_rate_a_window_then_none_after_one_over_the_rate():
    """rateinfo_init(): 5/sec, burst 1: the window may count 1 + 5 packets;
    rateinfo_recalc() after the 1 s window: 10 counted is over 5 a second,
    so the next window matches nothing; 3 in that one is not, so the one
    after matches again. Each source has its own entry."""
    k = Kernel()
    iptables(k, "-A INPUT -p udp -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 1 --hashlimit-mode srcip "
                "--hashlimit-name rm --hashlimit-htable-expire 10000 --hashlimit-rate-match -j ACCEPT")
    iptables(k, "-P INPUT DROP")

    def passed(count: int, src: str = "10.0.0.2") -> int:
        return sum(hook(k, packet(k, IP(src=src, dst="10.0.0.1") / UDP()), NF_INET_LOCAL_IN) == NF_ACCEPT
                   for _ in range(count))
    assert passed(10) == 6
    assert passed(2, "10.0.0.3") == 2
    k.advance(1.0)
    assert passed(3) == 0
    k.advance(1.0)
    assert passed(10) == 6


def test_a_line_rate_train_counts_every_packet_into_the_estimator():
    """100 kpps for 0.3 s through a RATEEST rule, most packets applied in bulk:
    the first 248 ms window holds 24,800 of them, read as 24800 << 10 >> 1 >> 8
    = 49,600 pps after the tick (more than 40,000, less than 60,000)."""
    target = forwarding_target()
    for rule in ("-A FORWARD -p udp --dport 2000 -j RATEEST --rateest-name line --rateest-interval 250ms "
                 "--rateest-ewmalog 500ms",
                 "-A FORWARD -p udp --dport 2001 -m rateest --rateest line --rateest-gt --rateest-pps 40000 "
                 "-m rateest --rateest line --rateest-lt --rateest-pps 60000 -j DROP"):
        target.sh(f"iptables {rule}")
    result = target.traffic(Profile((Stream.of("p0", udp_frame(), rate=Rate(100_000.0)),)), duration=0.3)
    assert result.streams[0].opackets == 30_000 and len(target.journeys()) < 1_000
    target.send("p0", udp_frame(dport=2001))
    assert [(d.reason, d.stage) for d in target.drops()][-1:] == [("NETFILTER_DROP", "NF_FORWARD")]


@pytest.mark.parametrize("rules, passed", [
    (["-A FORWARD -p udp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 5 --hashlimit-name x -j DROP"], 5),
    (["-A FORWARD -p udp -m hashlimit --hashlimit-upto 5/min --hashlimit-burst 1 --hashlimit-name y "
      "--hashlimit-rate-match -j ACCEPT", "-A FORWARD -j DROP"], 6),
    (["-A FORWARD -p udp -m recent --name r --rcheck --hitcount 3 -j DROP", "-A FORWARD -p udp -m recent --name r --set"],
     3),
    (["-A FORWARD -p udp -m quota --quota 6000 -j ACCEPT", "-A FORWARD -j DROP"], 130),
])
def test_a_line_rate_train_repeats_no_packet_that_changed_a_hashlimit_recent_or_quota_state(rules, passed):
    """10,000 packets of one flow at 100 kpps: a bucket of 5 passes 5; a rate
    match of burst 1 + 5 a window passes 6; recent --hitcount 3 passes the 3
    it had not seen 3 times; a quota of 6,000 bytes passes 130 packets of 46
    (xt_quota.c quota_mt()), as packet by packet: the engine repeats in bulk
    only what left that state alone, or draws a bounded count down."""
    target = forwarding_target()
    for rule in rules:
        target.sh(f"iptables {rule}")
    result = target.traffic(Profile((Stream.of("p0", udp_frame(), rate=Rate(100_000.0)),)), duration=0.1)
    assert (result.streams[0].opackets, result.streams[0].ipackets) == (10_000, passed)


def test_a_line_rate_train_draws_a_hashlimit_bucket_down_in_bulk():
    """20,000/s with a burst of 500 at 100 kpps for 0.1 s: the burst and 80
    credits' worth a jiffy (HZ 250) for the 24 or 25 jiffies the run spans
    pass, 2,420 to 2,500; the bucket is a bounded counter the engine draws
    down in bulk, so few packets are probed one by one."""
    target = forwarding_target()
    for rule in ("-A FORWARD -p udp -m hashlimit --hashlimit-upto 20000/sec --hashlimit-burst 500 --hashlimit-name z "
                 "-j ACCEPT", "-A FORWARD -j DROP"):
        target.sh(f"iptables {rule}")
    result = target.traffic(Profile((Stream.of("p0", udp_frame(), rate=Rate(100_000.0)),)), duration=0.1)
    assert 2_420 <= result.streams[0].ipackets <= 2_500
    assert len(target.journeys()) < 1_000


# ------------------------------------------------------------------ hashlimit tables shared by name

def test_hashlimit_rules_naming_one_table_use_the_settings_of_the_rule_that_made_it():
    """htable_find_get() by name and family: a second rule naming the table shares
    it as made (htable_create() with the first rule's cfg); hashlimit_mt_common()
    fills and keys its entries by hinfo->cfg and keeps only the rule's own
    upto/above. Its 1000/sec burst 100 is saved as given and not used: a burst
    of 2 through both rules, then nothing; an --hashlimit-above rule on the
    table matches from the third packet."""
    k = Kernel()
    iptables(k, "-A INPUT -p udp --dport 7 -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 "
                "--hashlimit-mode srcip --hashlimit-name t -j ACCEPT")
    iptables(k, "-A INPUT -p udp --dport 9 -m hashlimit --hashlimit-upto 1000/sec --hashlimit-burst 100 "
                "--hashlimit-mode dstip --hashlimit-name t -j ACCEPT")
    iptables(k, "-A INPUT -p udp --dport 11 -m hashlimit --hashlimit-above 1000/sec --hashlimit-name t -j ACCEPT")
    iptables(k, "-P INPUT DROP")
    assert "--hashlimit-upto 1000/sec --hashlimit-burst 100 --hashlimit-mode dstip" in saved(k)[1]
    assert send(k, 9, 3) == [NF_ACCEPT, NF_ACCEPT, NF_DROP]
    assert send(k, 7) == [NF_DROP]
    assert send(k, 11) == [NF_ACCEPT]


def test_a_hashlimit_table_its_last_rule_left_is_made_anew_with_the_next_rules_settings():
    """htable_put(): the table goes with the last rule that held it."""
    k = Kernel()
    iptables(k, "-A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-name t "
                "-j ACCEPT")
    iptables(k, "-P INPUT DROP")
    assert send(k, 9, 3) == [NF_ACCEPT, NF_ACCEPT, NF_DROP]
    iptables(k, "-F INPUT")
    iptables(k, "-A INPUT -p udp -m hashlimit --hashlimit-upto 1000/sec --hashlimit-burst 100 --hashlimit-name t "
                "-j ACCEPT")
    assert send(k, 9, 3) == [NF_ACCEPT] * 3


def test_hashlimit_rules_of_another_kind_on_one_table_are_named_not_modelled():
    k = Kernel()
    iptables(k, "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name t")
    assert refusal(k, "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-rate-match --hashlimit-name t") == (
        1, "--hashlimit-name t shared by rules of another kind (rate match or bytes) is not modelled by the mock kernel")
