"""Egress qdiscs on the mock (sched/sch_*.py) and `tc qdisc|class` (cmd/tc_qdisc.py).

Tests named `..._as_real_tc...` require the mock's output, error and exit status to
be what tc (iproute2 6.1) and this kernel (6.18) answer to the same commands,
recorded in tests/golden/tc/ by `sudo tests/golden/record_tc` (a scratch network
namespace holding p0..p2, as test_nft.py's recorder) and, with root, asked live too.
The others pin the qdiscs' arithmetic: token buckets, limits and trains, with
expected values worked out from the kernel's formulas by hand.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.dropreason import DropReason
from harness.mockkernel.cmd import tc_util
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.sched.sch_fifo import Bfifo, Pfifo
from harness.mockkernel.sched.sch_generic import PschedRatecfg
from harness.mockkernel.sched.sch_tbf import Tbf, TbfQopt
from harness.mockkernel.target import sh
from harness.mockkernel.core.rtnetlink import dev_change_flags
from harness.mockkernel.net import NetDevice
from harness.target import PORTS, CommandError
from test_nft import RealTools

GOLDEN = Path(__file__).resolve().parent / "golden" / "tc"
# the scratch namespace's veths are down and would send IPv6 autoconfiguration through
# their qdiscs on coming up: IPv6 off first (the mock's ports are up already)
UP = [(["sysctl", "-w", "net.ipv6.conf.all.disable_ipv6=1"], None)] + \
    [(["ip", "link", "set", "dev", port, "up"], None) for port in ("p0", "p1", "p2")]


@pytest.fixture
def real_tc(request) -> RealTools:
    return RealTools(request, GOLDEN, "tc iproute2-6.1.0, Linux 6.18")


def steps(*lines: str) -> list[tuple[list[str], None]]:
    return UP + [(line.split(), None) for line in lines]


QDISC_SETUPS = {
    "tbf with limit": ["tc qdisc add dev p0 root handle 1: tbf rate 8kbit burst 2000 limit 3000"],
    "tbf with latency": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 10kb latency 70ms"],
    "tbf at 10gbit": ["tc qdisc add dev p0 root handle 5: tbf rate 10gbit burst 1mb limit 10mb"],
    "tbf with peakrate": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 32kbit latency 400ms "
                          "peakrate 2mbit mtu 1540"],
    "tbf with overhead": ["tc qdisc add dev p0 root handle 1: tbf rate 512kbit burst 1600 limit 3000 overhead 24"],
    "tbf odd rate": ["tc qdisc add dev p0 root handle a: tbf rate 1234567bit burst 3333 limit 7777"],
    # get_rate64()/get_time() read with glibc's strtod() and store the double as gcc does on x86-64
    "tbf hex rate and latency": ["tc qdisc add dev p0 root handle 1: tbf rate 0x10mbit burst 10k latency 0x10ms"],
    "tbf latency past a u32": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 10k latency 1e13"],
    "tbf negative latency": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 10k latency -5"],
    "tbf rate of 1e19 bits": ["tc qdisc add dev p0 root handle 1: tbf rate 1e19bit burst 10k latency 1ms"],
    "tbf negative rate": ["tc qdisc add dev p0 root handle 1: tbf rate -8000bit burst 10k latency 1ms"],
    "pfifo default": ["tc qdisc add dev p0 root handle 1: pfifo"],
    "pfifo limit": ["tc qdisc add dev p0 root handle 2: pfifo limit 10"],
    "pfifo_fast": ["tc qdisc add dev p0 root handle 1: pfifo_fast"],
    "pfifo_fast back to noqueue": ["tc qdisc add dev p0 root handle 1: pfifo_fast", "tc qdisc del dev p0 root"],
    "bfifo default": ["tc qdisc add dev p0 root handle 3: bfifo"],
    "bfifo limit": ["tc qdisc add dev p0 root handle 3: bfifo limit 64kb"],
    "tbf and pfifo child": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                            "tc qdisc add dev p0 parent 1:1 handle 10: pfifo limit 5"],
    "tbf and bfifo child on p1": ["tc qdisc add dev p1 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                                  "tc qdisc add dev p1 parent 1: handle 20: bfifo limit 4000",
                                  "tc qdisc add dev p0 root handle 7: pfifo"],
    "replace changes the kind": ["tc qdisc add dev p0 root handle 1: pfifo",
                                 "tc qdisc replace dev p0 root handle 1: bfifo limit 5000"],
    "replace a new handle": ["tc qdisc add dev p0 root handle 1: pfifo",
                             "tc qdisc replace dev p0 root handle 2: tbf rate 1mbit burst 5k limit 10k"],
    "change the limit": ["tc qdisc add dev p0 root handle 1: pfifo limit 5",
                         "tc qdisc change dev p0 root handle 1: pfifo limit 7"],
    "change tbf": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                   "tc qdisc change dev p0 root handle 1: tbf rate 2mbit burst 6k limit 20k"],
    "delete the root": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                        "tc qdisc del dev p0 root"],
    "delete the child": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                         "tc qdisc add dev p0 parent 1:1 handle 10: pfifo limit 5",
                         "tc qdisc del dev p0 parent 1:1"],
    "no flags graft another kind": ["tc qdisc add dev p0 root handle 1: pfifo",
                                    "tc qdisc change dev p0 root handle 2: bfifo limit 5000"],
    "link changes": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc link dev p0 root pfifo limit 9"],
    "replace changes": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc replace dev p0 root pfifo limit 6"],
    "htb bare": ["tc qdisc add dev p0 root handle 1: htb"],
    "htb options": ["tc qdisc add dev p0 root handle 1: htb default 20 r2q 5 direct_qlen 30"],
    "htb tree": ["tc qdisc add dev p0 root handle 1: htb default 20",
                 "tc class add dev p0 parent 1: classid 1:1 htb rate 10mbit",
                 "tc class add dev p0 parent 1:1 classid 1:10 htb rate 3mbit ceil 10mbit prio 1",
                 "tc class add dev p0 parent 1:1 classid 1:20 htb rate 7mbit burst 20k cburst 4k quantum 3000",
                 "tc qdisc add dev p0 parent 1:10 handle 10: pfifo limit 20"],
    "htb many classes": ["tc qdisc add dev p0 root handle 1: htb",
                         *[f"tc class add dev p0 parent 1: classid 1:{i:x} htb rate {i}00kbit" for i in range(1, 12)]],
    # quantum given: the kernel's warning about one out of 1000..200000 is not modelled (stderr on success)
    "htb rates": ["tc qdisc add dev p0 root handle 1: htb",
                  "tc class add dev p0 parent 1: classid 1:1 htb rate 10gbit quantum 60000",
                  "tc class add dev p0 parent 1: classid 1:2 htb rate 8kbit ceil 1234567bit overhead 20 quantum 1500",
                  "tc class add dev p0 parent 1: classid 1:3 htb rate 100mbit ceil 40gbit quantum 200000"],
    "htb change and delete": ["tc qdisc add dev p0 root handle 1: htb",
                              "tc class add dev p0 parent 1: classid 1:1 htb rate 10mbit",
                              "tc class add dev p0 parent 1:1 classid 1:10 htb rate 3mbit",
                              "tc class change dev p0 parent 1:1 classid 1:10 htb rate 4mbit ceil 5mbit",
                              "tc class replace dev p0 parent 1:1 classid 1:11 htb rate 1mbit",
                              "tc class del dev p0 classid 1:10"],
    "htb leaf back to a leaf": ["tc qdisc add dev p0 root handle 1: htb",
                                "tc class add dev p0 parent 1: classid 1:1 htb rate 10mbit",
                                "tc class add dev p0 parent 1:1 classid 1:10 htb rate 3mbit",
                                "tc class del dev p0 classid 1:10"],
    "several children hashed": ["tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 5k limit 10k",
                                "tc qdisc add dev p0 parent 1:1 handle 2: tbf rate 1mbit burst 5k limit 10k",
                                "tc qdisc add dev p0 parent 2:1 handle 3: tbf rate 1mbit burst 5k limit 10k",
                                "tc qdisc add dev p0 parent 3:1 handle 4: pfifo"],
}


@pytest.mark.parametrize("name", QDISC_SETUPS)
def test_qdiscs_list_back_as_real_tc_lists_them(name, real_tc):
    shows = ["tc -s qdisc show dev p0", "tc qdisc show dev p1", "tc qdisc show dev p0 invisible",
             "tc class show dev p0", "tc -s class show dev p0"]
    real_tc.assert_same_as_real(steps(*QDISC_SETUPS[name], *shows), tools=("tc",))


ERRORS = {
    "add twice": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc add dev p0 root handle 1: pfifo"],
    "add over another": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc add dev p0 root handle 2: pfifo"],
    "add the same kind over another": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc add dev p0 root pfifo"],
    "minor handle": ["tc qdisc add dev p0 root handle 1:2 pfifo"],
    "unknown kind": ["tc qdisc add dev p0 root handle 1: nosuchqdisc"],
    "unknown kind with options": ["tc qdisc add dev p0 root handle 1: nosuchqdisc limit 5"],
    "parent missing": ["tc qdisc add dev p0 parent 5:1 handle 10: pfifo"],
    "parent not classful": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc add dev p0 parent 1:1 pfifo"],
    "change missing": ["tc qdisc change dev p0 root handle 1: pfifo limit 5"],
    "change the kind": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc change dev p0 root handle 1: bfifo"],
    "delete noqueue": ["tc qdisc del dev p0 root"],
    "delete missing handle": ["tc qdisc del dev p0 handle 9:"],
    "delete wrong handle": ["tc qdisc add dev p0 root handle 1: pfifo", "tc qdisc del dev p0 root handle 2:"],
    "no device": ["tc qdisc add dev nosuch root pfifo"],
    "no dev": ["tc qdisc add root pfifo"],
    "bad handle": ["tc qdisc add dev p0 root handle xyz pfifo"],
    "bad parent": ["tc qdisc add dev p0 parent 1:xyz pfifo"],
    "fifo bad limit": ["tc qdisc add dev p0 root pfifo limit lots"],
    "fifo unknown option": ["tc qdisc add dev p0 root bfifo depth 5"],
    "tbf nothing": ["tc qdisc add dev p0 root tbf"],
    "tbf no rate": ["tc qdisc add dev p0 root tbf burst 5k limit 10k"],
    "tbf limit and latency": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k limit 10k latency 5ms"],
    "tbf peakrate without mtu": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k limit 10k peakrate 2mbit"],
    "tbf peakrate below rate": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k limit 10k peakrate 1mbit mtu 1500"],
    "tbf bad rate": ["tc qdisc add dev p0 root tbf rate fast burst 5k limit 10k"],
    "tbf infinite rate": ["tc qdisc add dev p0 root tbf rate inf burst 5k limit 10k"],
    "tbf rate past a u64": ["tc qdisc add dev p0 root tbf rate 1e21bit burst 5k limit 10k"],
    "tbf infinite latency": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k latency 1e999ms"],
    "tbf nan size": ["tc qdisc add dev p0 root tbf rate 1mbit burst nan limit 10k"],
    "tbf bad burst": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k/3 limit 10k"],
    "tbf duplicate": ["tc qdisc add dev p0 root tbf rate 1mbit rate 2mbit burst 5k limit 10k"],
    "tbf unknown option": ["tc qdisc add dev p0 root tbf rate 1mbit burst 5k limit 10k quantum 3"],
    "pfifo_fast options": ["tc qdisc add dev p0 root pfifo_fast limit 5"],
    "pfifo_fast change": ["tc qdisc add dev p0 root handle 1: pfifo_fast",
                          "tc qdisc change dev p0 root handle 1: pfifo_fast"],
    "unknown verb": ["tc qdisc frobnicate dev p0"],
    "htb class without rate": ["tc qdisc add dev p0 root handle 1: htb",
                               "tc class add dev p0 parent 1: classid 1:1 htb"],
    "htb class twice": ["tc qdisc add dev p0 root handle 1: htb",
                        "tc class add dev p0 parent 1: classid 1:1 htb rate 1mbit",
                        "tc class add dev p0 parent 1: classid 1:1 htb rate 1mbit"],
    "htb class on a missing qdisc": ["tc class add dev p0 parent 2: classid 2:1 htb rate 1mbit"],
    "htb class on pfifo": ["tc qdisc add dev p0 root handle 1: pfifo",
                           "tc class add dev p0 parent 1: classid 1:1 htb rate 1mbit"],
    "htb class other major": ["tc qdisc add dev p0 root handle 1: htb",
                              "tc class add dev p0 parent 1: classid 2:1 htb rate 1mbit"],
    "htb class change missing": ["tc qdisc add dev p0 root handle 1: htb",
                                 "tc class change dev p0 parent 1: classid 1:5 htb rate 1mbit"],
    "htb delete a parent": ["tc qdisc add dev p0 root handle 1: htb",
                            "tc class add dev p0 parent 1: classid 1:1 htb rate 10mbit",
                            "tc class add dev p0 parent 1:1 classid 1:10 htb rate 3mbit",
                            "tc class del dev p0 classid 1:1"],
    "htb too deep": ["tc qdisc add dev p0 root handle 1: htb",
                     *[f"tc class add dev p0 parent 1:{i} classid 1:{i + 1} htb rate 1mbit" for i in range(0, 9)]],
    "htb bad option": ["tc qdisc add dev p0 root handle 1: htb quantum 5"],
    "htb class bad option": ["tc qdisc add dev p0 root handle 1: htb",
                             "tc class add dev p0 parent 1: classid 1:1 htb rate 1mbit limit 5"],
    "class handle": ["tc qdisc add dev p0 root handle 1: htb",
                     "tc class add dev p0 parent 1: handle 1:1 htb rate 1mbit"],
    "class on classless": ["tc qdisc add dev p0 root handle 1: htb",
                           "tc class add dev p0 parent 1: classid 1:1 pfifo limit 5"],
    "garbage show": ["tc qdisc show dev p0 xyz"],
}


@pytest.mark.parametrize("name", ERRORS)
def test_qdisc_errors_are_real_tc_errors(name, real_tc):
    real_tc.assert_same_as_real(steps(*ERRORS[name], "tc qdisc show dev p0", "tc class show dev p0"), tools=("tc",))


# ---------------------------------------------------------------- the arithmetic

def skb_of(length: int):
    """An skb whose qdisc_pkt_len() is `length` (the frame from its MAC header)."""
    skb = alloc_skb(bytes(length))
    skb.net = KERNEL
    return skb


KERNEL = Kernel()


@pytest.fixture
def k():
    return Kernel()


def test_rate_precompute_is_the_kernels_multiply_shift():
    # psched_ratecfg_precompute(): 1e9 << shift // rate until bit 31 of mult is set
    rate = PschedRatecfg(1000)  # 8kbit
    assert (rate.mult, rate.shift) == (4_096_000_000, 12)
    assert rate.l2t_ns(2000) == 2_000_000_000
    assert PschedRatecfg(125_000).l2t_ns(1000) == 8_000_000  # 1mbit: 8 ms per 1000 bytes


def test_tbf_lets_a_train_go_as_far_as_the_tokens_reach_and_wakes_when_the_next_fits(k):
    dev = k.dev_by_name("p1")
    # 8kbit: 1000 bytes a second; burst 2500 bytes: two of 1000 at once, 500 left
    tbf = Tbf(dev, 0x10000, 0xFFFFFFFF, TbfQopt(limit=10_000, rate=1000, burst=2500))
    skb = skb_of(1000)
    assert tbf.enqueue(skb, 6, 0.0) == 6
    assert tbf.dequeue(0.0) == (skb, 2)
    assert tbf.dequeue(0.0) is None
    assert tbf.overlimits == 1
    assert tbf.next_event(0.0) == 0.5  # 500 bytes of tokens left: the third fits after 0.5 s
    assert tbf.dequeue(2.5) == (skb, 2)  # 2.5 s refill 2500 bytes (the cap): 3000 in hand, two go
    assert (tbf.qlen, tbf.backlog, tbf.packets, tbf.bytes) == (2, 2000, 4, 4000)
    assert tbf.next_event(2.5) == 3.0


def test_tbf_drops_a_packet_the_bucket_can_never_send(k):
    tbf = Tbf(k.dev_by_name("p1"), 0x10000, 0xFFFFFFFF, TbfQopt(limit=10_000, rate=1000, burst=1000))
    assert tbf.enqueue(skb_of(1001), 3, 0.0) == 0
    assert (tbf.drops, tbf.drop_reason, tbf.qlen) == (3, DropReason.QDISC_DROP, 0)


def test_fifos_take_a_train_up_to_their_limit_and_drop_the_rest(k):
    dev = k.dev_by_name("p1")
    pfifo, bfifo = Pfifo(dev, 0x10000, 0xFFFFFFFF, 5), Bfifo(dev, 0x20000, 0xFFFFFFFF, 2500)
    assert pfifo.enqueue(skb_of(100), 3, 0.0) == 3
    assert pfifo.enqueue(skb_of(100), 4, 0.0) == 2
    assert (pfifo.qlen, pfifo.drops, pfifo.drop_reason) == (5, 2, DropReason.QDISC_DROP)
    assert bfifo.enqueue(skb_of(1000), 3, 0.0) == 2  # 2000 of 2500 bytes; a third would make 3000
    assert (bfifo.backlog, bfifo.drops) == (2000, 1)
    assert pfifo.dequeue(0.0, 2)[1] == 2 and pfifo.dequeue(0.0)[1] == 1 and pfifo.dequeue(0.0)[1] == 2


def test_default_fifo_limits_come_from_the_device(k):
    dev = k.dev_by_name("p1")  # tx_queue_len 1000, MTU 1500: frames of 1514
    assert Pfifo(dev, 0x10000, 0xFFFFFFFF).limit == 1000
    assert Bfifo(dev, 0x10000, 0xFFFFFFFF).limit == 1_514_000


def frame(i: int = 0) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.1.2", id=i) /
                 UDP(sport=1, dport=7) / bytes(958))  # 1000 bytes


@pytest.fixture
def router(k):
    for line in ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
                 "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent",
                 "sysctl -w net.ipv4.ip_forward=1"):
        sh(k, line.split())
    return k


def test_the_watchdog_sends_what_tbf_held_when_its_tokens_suffice(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: tbf rate 8kbit burst 2000 limit 3000".split())
    k.receive("p0", [frame(i) for i in range(5)])
    wire = k.nics["p1"].wire
    assert len(wire) == 2
    k.advance(0.999)
    assert len(wire) == 2
    k.advance(0.001)
    assert len(wire) == 3
    k.advance(1.0)
    assert len(wire) == 4
    assert "overlimits 5 " in sh(k, "tc -s qdisc show dev p1".split())  # 3 at the burst, 2 at the wakeups


def test_the_line_rate_engine_takes_the_packet_instead_of_the_qdisc(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: pfifo".split())
    taken = []
    k.xmit_hook = lambda dev, skb: taken.append((dev.name, skb.len))
    k.receive("p0", [frame()])
    assert taken == [("p1", 1000)]
    assert k.dev_by_name("p1").qdisc.qlen == 0 and k.nics["p1"].wire == []


@pytest.mark.parametrize("rate, text", [(1000, "8Kbit"), (125_000, "1Mbit"), (1_250_000_000, "10Gbit"),
                                        (154320, "1234Kbit"), (123, "984bit"), (125_000_125, "1Gbit"),
                                        (125_125, "1001Kbit")])
def test_rates_print_as_tc_scales_them(rate, text):
    assert tc_util.sprint_rate(rate) == text


@pytest.mark.parametrize("size, text", [(1000, "1000b"), (1024, "1Kb"), (1030, "1Kb"), (1040, "1040b"),
                                        (1_514_000, "1514000b"), (1 << 20, "1Mb"), (10 * 1024 + 5, "10Kb")])
def test_sizes_print_as_tc_rounds_them(size, text):
    assert tc_util.sprint_size(size) == text


def test_automatic_handles_count_up_from_8001(k):
    sh(k, "tc qdisc add dev p0 root pfifo".split())
    sh(k, "tc qdisc replace dev p0 root bfifo".split())  # another kind: a new qdisc, a new handle
    assert sh(k, "tc qdisc show dev p0".split()) == "qdisc bfifo 8002: root refcnt 3 limit 1514000b\n"
    assert " qdisc bfifo state " in sh(k, "ip link show dev p0".split())


def test_htb_leaf_sends_its_burst_then_borrows_from_its_parent_up_to_the_ceil(router):
    # 1:10 has 8kbit (1000 B/s, 1 s of tokens) and may borrow up to 16kbit from 1:1
    # (2000 B/s, 0.5 s); each 1000-byte frame costs 1 s of 1:10's rate, 0.5 s of a ceil.
    k = router
    for line in ("tc qdisc add dev p1 root handle 1: htb default 10",
                 "tc class add dev p1 parent 1: classid 1:1 htb rate 16kbit burst 1000 cburst 1000",
                 "tc class add dev p1 parent 1:1 classid 1:10 htb rate 8kbit ceil 16kbit burst 1000 cburst 1000",
                 "tc class add dev p1 parent 1:1 classid 1:20 htb rate 8kbit ceil 16kbit"):
        sh(k, line.split())
    k.receive("p0", [frame(i) for i in range(4)])
    wire = k.nics["p1"].wire
    assert len(wire) == 2  # the full bucket, then one more while its tokens are not negative
    k.advance(0.499)
    assert len(wire) == 2
    k.advance(0.001)
    assert len(wire) == 3  # the ceils refilled: 1:10 may borrow, 1:1 can send: lent at its level
    k.advance(0.5)
    assert len(wire) == 4  # 1:10's own rate again
    classes = sh(k, "tc -s class show dev p1".split())
    assert (" lended: 3 borrowed: 1 giants: 0\n tokens: -15625000 ctokens: -7812500\n"
            in classes.split("class htb 1:10 ")[1])
    assert " lended: 1 borrowed: 0 giants: 0\n" in classes.split("class htb 1:1 ")[1]
    assert "(dropped 0, overlimits 6 requeues 0)" in sh(k, "tc -s qdisc show dev p1".split())


def test_htb_serves_the_lower_prio_first_and_round_robins_equals_by_quantum(k):
    dev = k.dev_by_name("p1")
    for line in ("tc qdisc add dev p1 root handle 1: htb",
                 "tc class add dev p1 parent 1: classid 1:1 htb rate 1gbit burst 100k cburst 100k prio 1 quantum 3000",
                 "tc class add dev p1 parent 1: classid 1:2 htb rate 1gbit burst 100k cburst 100k prio 1 quantum 1000",
                 "tc class add dev p1 parent 1: classid 1:3 htb rate 1gbit burst 100k cburst 100k prio 0"):
        sh(k, line.split())
    htb = dev.qdisc
    skbs = {}
    for minor in (1, 2, 3):
        skb = skb_of(1000)
        skb.priority = 0x10000 | minor
        skbs[minor] = skb
        htb.enqueue(skb, 4, 0.0)
    order = []
    while (got := htb.dequeue(0.0, 1)) is not None:
        order.append(next(m for m, s in skbs.items() if s is got[0]))
    # prio 0 first; then DRR: 1:1's deficit 0 sends one and goes to 3000-1000=2000 ... three in a row
    assert order == [3, 3, 3, 3, 1, 2, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("setup", [
    ["tc qdisc add dev p1 root handle 1: tbf rate 80kbit burst 3500 limit 100000"],
    ["tc qdisc add dev p1 root handle 1: tbf rate 80kbit burst 3500 limit 100000 peakrate 160kbit mtu 2000"],
    ["tc qdisc add dev p1 root handle 1: htb default 10",
     "tc class add dev p1 parent 1: classid 1:1 htb rate 160kbit burst 2500 cburst 2500",
     "tc class add dev p1 parent 1:1 classid 1:10 htb rate 80kbit ceil 160kbit burst 3500 cburst 1500 quantum 2500"],
], ids=["tbf", "tbf peakrate", "htb borrowing"])
def test_a_train_leaves_as_its_packets_would_one_by_one(k, setup):
    """The engine's contract: dequeue() of a train gives, at each instant, as many
    packets as that many single dequeues would."""
    def departures(train: bool) -> list[int]:
        kernel = Kernel()
        for line in setup:
            sh(kernel, line.split())
        q = kernel.dev_by_name("p1").qdisc
        skb = skb_of(1000)
        if train:
            q.enqueue(skb, 40, 0.0)
        else:
            for _ in range(40):
                q.enqueue(skb_of(1000), 1, 0.0)
        sent = []
        for step in range(60):
            now = step * 0.0375
            count = 0
            while (got := q.dequeue(now, 1 << 62 if train else 1)) is not None:
                count += got[1]
            sent.append(count)
        return sent
    one_by_one = departures(False)
    assert sum(one_by_one) > 10 and one_by_one[0] >= 2  # the scenario shapes: a burst, then the rate
    assert departures(True) == one_by_one


def test_htb_filters_pick_the_class_fw_by_mark_then_matchall(k):
    # neither classifier is built into the lab's kernel: the mock's own (cls_fw.c, cls_matchall.c)
    for line in ("tc qdisc add dev p1 root handle 1: htb default 30",
                 "tc class add dev p1 parent 1: classid 1:10 htb rate 1gbit",
                 "tc class add dev p1 parent 1: classid 1:20 htb rate 1gbit",
                 "tc class add dev p1 parent 1: classid 1:30 htb rate 1gbit",
                 "tc filter add dev p1 parent 1: protocol ip pref 1 handle 6/0xff fw flowid 1:10",
                 "tc filter add dev p1 parent 1: protocol ip pref 2 matchall classid 1:20"):
        sh(k, line.split())
    htb = k.dev_by_name("p1").qdisc
    marked, unmarked, arp, named = skb_of(100), skb_of(100), skb_of(100), skb_of(100)
    for skb in (marked, unmarked, named):
        skb.protocol = 0x0800
    arp.protocol = 0x0806
    marked.mark = 0x306
    named.priority = 0x10030
    assert [htb.classify(s).classid for s in (marked, unmarked, arp, named)] == [0x10010, 0x10020, 0x10030, 0x10030]
    sh(k, "tc filter del dev p1 parent 1: pref 2".split())
    assert htb.classify(unmarked).classid == 0x10030


def test_pfifo_fast_sends_the_tos_bands_in_order(k):
    # ip_forward() sets skb->priority from the TOS: low delay (0x10) is band 0, bulk (0x08) band 2
    sh(k, "tc qdisc add dev p1 root handle 1: pfifo_fast".split())
    q = k.dev_by_name("p1").qdisc
    skbs = []
    for priority in (2, 0, 6):  # TC_PRIO_BULK, BESTEFFORT, INTERACTIVE
        skb = skb_of(100)
        skb.priority = priority
        q.enqueue(skb, 2, 0.0)
        skbs.append(skb)
    assert [q.dequeue(0.0)[0] for _ in range(3)] == [skbs[2], skbs[1], skbs[0]]


def test_the_default_qdisc_is_for_devices_that_queue_and_must_be_a_known_kind(k):
    with pytest.raises(CommandError, match='setting key "net.core.default_qdisc": No such file or directory'):
        sh(k, "sysctl -w net.core.default_qdisc=nosuch".split())
    sh(k, "sysctl -w net.core.default_qdisc=bfifo".split())
    assert sh(k, "tc qdisc show dev p1".split()) == "qdisc noqueue 0: root refcnt 2 \n"  # veth: IFF_NO_QUEUE
    nic = k.add_device(NetDevice("eth0", 9, "ether", bytes(6)))
    dev_change_flags(k, nic, True)
    assert nic.qdisc.kind == "bfifo" and nic.qdisc.limit == 1_514_000


def test_netem_delays_by_its_latency_and_jitter_and_prints_as_q_netem_prints(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: netem delay 100ms 20ms loss 0.5% duplicate 1% 25%".split())
    assert sh(k, "tc qdisc show dev p1".split()) == (
        "qdisc netem 1: root refcnt 3 limit 1000 delay 100ms  20ms loss 0.5% duplicate 1% 25%\n")
    sh(k, "tc qdisc change dev p1 root handle 1: netem delay 100ms 20ms".split())
    k.receive("p0", [frame(i) for i in range(200)])
    wire = k.nics["p1"].wire
    k.advance(0.079999)
    assert wire == []  # nothing before latency - jitter
    k.advance(0.04)
    assert len(wire) == 200  # everything by latency + jitter
    ids = [IP(f[14:]).id for f in wire]
    assert ids != sorted(ids)  # jitter reorders them


def test_netem_loss_drops_about_its_share_with_the_qdisc_reason(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: netem loss 10%".split())
    for batch in range(2):  # within the 256-descriptor RX ring
        k.receive("p0", [frame(batch * 250 + i) for i in range(250)])
    drops = k.tracer.drops
    assert 25 <= len(drops) <= 75 and {d.reason for d in drops} == {DropReason.QDISC_DROP}
    assert len(k.nics["p1"].wire) == 500 - len(drops)
    assert f"(dropped {len(drops)}, " in sh(k, "tc -s qdisc show dev p1".split())


def test_netem_rate_spaces_packets_by_their_transmission_time(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: netem rate 8mbit".split())  # 1000 bytes: 1 ms each
    k.receive("p0", [frame(i) for i in range(5)])
    wire = k.nics["p1"].wire
    sent = []
    for _ in range(5):
        k.advance(0.001)
        sent.append(len(wire))
    assert sent == [1, 2, 3, 4, 5]


def test_netem_reorder_sends_all_but_every_gapth_packet_late(router):
    k = router
    sh(k, "tc qdisc add dev p1 root handle 1: netem delay 10ms reorder 100% gap 3".split())
    k.receive("p0", [frame(i) for i in range(6)])
    wire = k.nics["p1"].wire
    assert [IP(f[14:]).id for f in wire] == [2, 5]  # the 3rd and 6th go at once
    k.advance(0.01)
    assert [IP(f[14:]).id for f in wire] == [2, 5, 0, 1, 3, 4]


def test_fq_codel_prints_its_defaults_and_counts_flows(k):
    sh(k, "tc qdisc add dev p1 root handle 1: fq_codel".split())
    assert sh(k, "tc qdisc show dev p1".split()) == (
        "qdisc fq_codel 1: root refcnt 3 limit 10240p flows 1024 quantum 1514 target 5ms interval 100ms "
        "memory_limit 32Mb ecn drop_batch 64 \n")
    q = k.dev_by_name("p1").qdisc
    for flow_hash in (1 << 20, 2 << 28, 1 << 20):
        skb = skb_of(1000)
        skb.hash = flow_hash
        q.enqueue(skb, 1, 0.0)
    assert (q.new_flow_count, len(q.new_flows)) == (2, 2)
    # memory_used: 3 x truesize of a head of 64 + 1000 bytes: a kmalloc-2048 object + the sk_buff's 256
    assert sh(k, "tc -s qdisc show dev p1".split()).endswith(
        " backlog 3000b 3p requeues 0\n  maxpacket 0 drop_overlimit 0 new_flow_count 2 ecn_mark 0 memory_used 6912\n"
        "  new_flows_len 2 old_flows_len 0\n")


def test_fq_codel_over_its_limit_drops_half_the_fattest_flow(k):
    sh(k, "tc qdisc add dev p1 root handle 1: fq_codel limit 10".split())
    q = k.dev_by_name("p1").qdisc
    fat, thin = skb_of(1000), skb_of(1000)
    fat.hash, thin.hash = 1 << 20, 3 << 28
    assert q.enqueue(fat, 8, 0.0) == 8
    assert q.enqueue(thin, 3, 0.0) == 3  # 11 > 10: the fat flow loses half its 8000 bytes
    assert (q.qlen, q.drops, q.drop_overlimit, q.drop_reason) == (7, 4, 4, DropReason.QDISC_OVERLIMIT)


def test_codel_drops_when_the_sojourn_stays_above_target_for_an_interval(k):
    # 20 packets queued at 0 s; dequeued one every 10 ms: the sojourn is above 5 ms from
    # the first dequeue (10 ms), so the first dequeue strictly after 110 ms drops
    # (codel_time_after(), QDISC_CONGESTED)
    sh(k, "tc qdisc add dev p1 root handle 1: fq_codel".split())
    q = k.dev_by_name("p1").qdisc
    for _ in range(20):
        q.enqueue(skb_of(1000), 1, 0.0)
    times = []
    for step in range(1, 20):
        before = q.drops
        got = q.dequeue(step * 0.01)
        if q.drops > before:
            times.append(step)
        if got is None:
            break
    assert times and times[0] == 12
    assert {d.reason for d in KERNEL.tracer.drops} >= {DropReason.QDISC_CONGESTED}
