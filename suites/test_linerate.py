"""Line rate: what the DUT does to traffic at rate, on every target that generates it.

A flood that XDP drops never reaches netfilter; tbf, htb and pfifo shape and drop
as configured, and `tc -s` counts it; a small RFC 2544 sample finds the forwarding
NDR with and without conntrack. Expected rates are written out from the
configuration (10 Mbit/s of 1514-byte frames: 10e6 / (8 * 1514) packets/s, tbf
and htb counting skb->len, the frame without FCS), never computed by the code
under test. The checks that need what only the mock models (an RX ring on the
port, NAPI, RSS queues: a veth has none of them) are mock-only, each saying why.
"""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import UDP

from harness import rfc2544
from harness.report import plots
from harness.target import TargetError
from harness.testing import counted
from harness.traffic import FCS_LEN, Loss, Mode, Profile, Rate, RateUnit, Result, Stream

FULL_FRAME = 1514  # bytes on the wire without FCS: skb->len, what tbf and htb count


def udp_stream(src, dst, dport: int, rate: float | Rate, size: int = FULL_FRAME, count: int | None = None,
               stream_id: int = 0, latency: bool = False) -> Stream:
    """UDP from host `src` to host `dst` (through the DUT), `size` bytes without FCS,
    at `rate` (packets/s unless a Rate)."""
    frame = rfc2544.sized_frame(src.to_dut(dst=dst.ip) / UDP(sport=1024, dport=dport), size + FCS_LEN)
    mode = Mode.CONTINUOUS if count is None else Mode.SINGLE_BURST
    return Stream(src.port.name, frame, rate if isinstance(rate, Rate) else Rate(rate), mode=mode, count=count,
                  id=stream_id, latency=latency)


def run(target, *streams: Stream, duration: float | None = None) -> Result:
    """The streams at rate, the result attached to the Allure result for the sign-off summary."""
    result = target.traffic(Profile(streams), duration=duration)
    plots.attach_traffic(result)
    return result


@pytest.fixture(autouse=True)
def generator(target):
    """What the target's traffic generator offers and observes; skips on a target without one."""
    try:
        return target.traffic_caps()
    except TargetError as exc:
        pytest.skip(str(exc))


def offers(generator, pps: float = 0.0, bps_L1: float = 0.0) -> None:
    """Skip, naming the generator and its limit, unless it offers `pps` / `bps_L1` per port."""
    if (why := generator.shortfall(pps, bps_L1)) is not None:
        pytest.skip(why)


def observed(generator, what: str, why: str) -> None:
    """Skip, saying `why`, unless the target's traffic observes `what`."""
    if what not in generator.observes:
        pytest.skip(why)


# XDP before netfilter --------------------------------------------------------------

FLOOD = 10_000
FLOOD_PPS = 100_000  # under what the DUT takes on every target: nothing lost before the hooks

NFT_DROP_DISCARD = """table ip flood {
  chain pre {
    type filter hook prerouting priority 0; policy accept;
    udp dport 9 counter drop
  }
}
"""


def test_xdp_drop_flood_leaves_netfilter_counters_at_zero_while_an_nft_drop_counts_every_packet(
        target, router, bpf_objects):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=NFT_DROP_DISCARD)
    flood = udp_stream(h0, h1, 9, FLOOD_PPS, size=60, count=FLOOD)
    target.sh(f"ip link set dev p0 xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    dropped_by_xdp = run(target, flood)
    assert (dropped_by_xdp.streams[0].opackets, dropped_by_xdp.streams[0].ipackets) == (FLOOD, 0)
    assert counted(target, "udp dport 9") == 0
    target.sh("ip link set dev p0 xdp off")
    dropped_by_nft = run(target, flood)
    assert (dropped_by_nft.streams[0].opackets, dropped_by_nft.streams[0].ipackets) == (FLOOD, 0)
    assert counted(target, "udp dport 9") == FLOOD


LINE_10G_64 = 14_880_952.38  # 64-byte frames (60 + FCS) at 10 Gbit/s: 10e9 / (8 * 84)


def test_xdp_drop_at_10g_line_rate_drops_every_frame_before_netfilter(target, router, bpf_objects, generator):
    """10 ms of 10GbE line rate in 64-byte frames (148,810 packets: those due at
    k / 14,880,952.38 s < 10 ms) into an XDP_DROP program: the XDP layer drops every
    one, the nft counter behind it stays at 0. Needs a generator of 14.88 Mpps."""
    offers(generator, pps=LINE_10G_64)
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=NFT_DROP_DISCARD)
    target.sh(f"ip link set dev p0 xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    result = run(target, udp_stream(h0, h1, 9, Rate(100, RateUnit.PERCENT), size=60), duration=0.01)
    assert (result.streams[0].opackets, result.streams[0].ipackets) == (148_810, 0)
    assert [(loss.stage, loss.reason, loss.packets) for loss in result.losses] == [("XDP", "NOT_SPECIFIED", 148_810)]
    assert counted(target, "udp dport 9") == 0


TC_STATS = re.compile(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)")


def tc_stats(target, what: str, dev: str) -> dict[str, dict[str, int]]:
    """`tc -s {what} show dev {dev}` as {"<kind> <handle>": {sent, dropped, overlimits,
    borrowed}} (borrowed: htb classes only)."""
    out = {}
    for block in re.split(r"^(?=qdisc |class )", target.sh(f"tc -s {what} show dev {dev}"), flags=re.M)[1:]:
        head = block.split()
        sent = TC_STATS.search(block)
        stats = dict(zip(("bytes", "sent", "dropped", "overlimits"), map(int, sent.groups())))
        if borrowed := re.search(r"borrowed: (\d+)", block):
            stats["borrowed"] = int(borrowed.group(1))
        out[f"{head[1]} {head[2]}"] = stats
    return out


# egress qdiscs at rate ------------------------------------------------------------

TEN_MBIT_PPS = 10e6 / (8 * 1514)  # 825.6 full frames per second


def test_tbf_at_10_mbit_delivers_10_mbit_and_counts_overlimits_and_drops(target, router):
    h0, h1 = router[0], router[1]
    target.sh("tc qdisc add dev p1 root handle 1: tbf rate 10mbit burst 5kb limit 150kb")
    result = run(target, udp_stream(h0, h1, 7, 2 * TEN_MBIT_PPS), duration=2.0)
    # two seconds at the rate, the 5 KiB burst (3 frames) before, and the full 150 KiB
    # queue (101 frames) drained after; the queue rides out the generator's pauses
    assert result.streams[0].ipackets == pytest.approx(2 * TEN_MBIT_PPS + 3 + 101, rel=0.05)
    tbf = tc_stats(target, "qdisc", "p1")["tbf 1:"]
    assert tbf["sent"] == result.streams[0].ipackets
    assert tbf["overlimits"] > 0
    assert tbf["dropped"] == result.streams[0].opackets - result.streams[0].ipackets


HTB_TWO_CLASSES = [
    "tc qdisc add dev p1 root handle 1: htb default 20",
    "tc class add dev p1 parent 1: classid 1:1 htb rate 10mbit ceil 10mbit",
    "tc class add dev p1 parent 1:1 classid 1:10 htb rate 5mbit ceil 10mbit",
    "tc class add dev p1 parent 1:1 classid 1:20 htb rate 5mbit ceil 10mbit",
    # leaf queues of 100 frames ride out the generator's pauses; full when the streams
    # stop, they drain after: 100 frames more per busy class
    "tc qdisc add dev p1 parent 1:10 handle 10: pfifo limit 100",
    "tc qdisc add dev p1 parent 1:20 handle 20: pfifo limit 100",
]
CLASSIFY_DPORT_10 = """table ip classify {
  chain post {
    type filter hook postrouting priority 0; policy accept;
    udp dport 10 meta priority set 1:10
  }
}
"""


@pytest.fixture
def htb(target, router):
    for command in HTB_TWO_CLASSES:
        target.sh(command)
    target.sh("nft -f -", stdin=CLASSIFY_DPORT_10)
    return router


def test_htb_class_alone_borrows_its_parents_rate_up_to_its_ceil(target, htb):
    h0, h1 = htb[0], htb[1]
    result = run(target, udp_stream(h0, h1, 10, 2 * TEN_MBIT_PPS), duration=2.0)
    # 1:10 has rate 5mbit, ceil 10mbit: alone, it borrows the other 5 from 1:1
    assert result.streams[0].ipackets == pytest.approx(2 * TEN_MBIT_PPS + 100, rel=0.05)
    classes = tc_stats(target, "class", "p1")
    assert classes["htb 1:10"]["borrowed"] > 0
    assert classes["htb 1:20"]["sent"] == 0


def test_htb_classes_both_busy_get_their_own_rate_each(target, htb):
    h0, h1 = htb[0], htb[1]
    result = run(target, udp_stream(h0, h1, 10, 2 * TEN_MBIT_PPS, stream_id=1),
                 udp_stream(h0, h1, 20, 2 * TEN_MBIT_PPS, stream_id=2), duration=2.0)
    for stream in (1, 2):  # 5 Mbit/s each for two seconds
        assert result.streams[stream].ipackets == pytest.approx(TEN_MBIT_PPS + 100, rel=0.05)


def test_pfifo_under_tbf_drops_what_exceeds_its_limit(target, router):
    h0, h1 = router[0], router[1]
    target.sh("tc qdisc add dev p1 root handle 1: tbf rate 30kbit burst 5kb limit 100kb")
    target.sh("tc qdisc add dev p1 parent 1:1 handle 10: pfifo limit 1")
    result = run(target, udp_stream(h0, h1, 7, 100_000, count=100))
    # 3 frames leave in tbf's 5 KiB burst, the next only 250 ms later (936 bytes of
    # tokens short, at 30 kbit/s), long after the burst arrived (1 ms; a loaded
    # tester took 84 ms): 1 waits in the pfifo, 96 are dropped there
    stats = tc_stats(target, "qdisc", "p1")
    assert (stats["pfifo 10:"]["dropped"], stats["pfifo 10:"]["sent"]) == (96, 4)
    assert result.streams[0].ipackets == 4


# the NIC and NAPI (mock only: a veth has no RX ring, no interrupt, no RX queues) -----

LINE_RATE = Rate(100, RateUnit.PERCENT)


def test_a_burst_larger_than_the_rx_ring_loses_the_excess_at_the_ring(target, router, generator):
    observed(generator, "ring", "veth has no RX ring")
    h0, h1 = router[0], router[1]
    target.sh("ethtool -G p0 rx 256")
    target.sh("ethtool -C p0 rx-usecs 1000")
    burst = udp_stream(h0, h1, 7, LINE_RATE, size=60, count=1000, latency=True)
    result = run(target, burst)
    # 1000 frames at 10 Gbit/s take 67 us: the interrupt comes 1 ms after the first,
    # the 256 descriptors are full by then
    assert result.losses == [Loss("NIC_RX", "FULL_RING", "p0 rx_missed_errors", 744)]
    assert result.streams[0].ipackets == 256
    assert result.streams[0].latency.min_us >= 1000
    rx_counters = target.sh("ip -s link show dev p0").splitlines()[3].split()
    assert rx_counters[1] == "256" and rx_counters[4] == "744"  # RX packets, missed


ROUTING_PPS = 1.74e6  # the XDP paper's Linux routing, one core, 64 bytes: what the mock is calibrated to


def test_a_flow_sharing_its_cpu_with_a_flood_waits_half_a_napi_weight_of_the_flood(target, router, generator):
    """p0's and p1's first RX queues are both polled by CPU 0: each time the light
    flow's queue is polled, the flood's queue was just polled for a NAPI weight (64
    frames), so the light flow waits on average half of it: 32 forwarded frames."""
    observed(generator, "ring", "veth has no RX ring: no NAPI queue per port, its frames wait in the backlog")
    h0, h1 = router[0], router[1]
    light = udp_stream(h1, h0, 8, 10_000, size=60, stream_id=1, latency=True)
    flood = udp_stream(h0, h1, 7, LINE_RATE, size=60, stream_id=2)
    alone = run(target, light, duration=0.01).streams[1].latency
    shared = run(target, light, flood, duration=0.01).streams[1]
    assert shared.ipackets == 100
    assert shared.latency.avg_us - alone.avg_us == pytest.approx(32 / ROUTING_PPS * 1e6, rel=0.10)


# Microsoft's RSS verification key and IPv4 flows ("Verifying the RSS Hash
# Calculation"; the 82599 datasheet repeats them): (source, port, destination, port)
# and the Toeplitz hash of their 4-tuple, low two bits the queue of `equal 4`
MS_RSS_KEY = ("6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:"
              "f2:0c:6a:42:b7:3b:be:ac:01:fa")
MS_RSS_FLOWS = [
    ("66.9.149.187", 2794, "161.142.100.80", 1766),  # 0x51ccc178: queue 0
    ("199.92.111.2", 14230, "65.69.140.83", 4739),  # 0xc626b0ea: queue 2
    ("24.19.198.95", 12898, "12.22.207.184", 38024),  # 0x5c2b394a: queue 2
    ("38.27.205.30", 48228, "209.142.163.6", 2217),  # 0xafc7327f: queue 3
    ("153.39.163.191", 44251, "202.188.127.2", 1303),  # 0x10e828a2: queue 2
]


def test_rss_spreads_flows_over_the_rx_queues_by_the_toeplitz_hash_of_their_4_tuple(target, router, generator):
    """With the key set and `equal 4`, a flow lands in queue indir[hash % 128] =
    hash % 4 (ethtool_rxfh_indir_default(): entry i -> queue i % 4)."""
    observed(generator, "rss", "veth has one RX queue and no RSS")
    h0 = router[0]
    target.sh("ethtool -L p0 combined 4")
    target.sh(f"ethtool -X p0 hkey {MS_RSS_KEY} equal 4")
    streams = [Stream(h0.port.name, rfc2544.sized_frame(h0.to_dut(src=src, dst=dst) / UDP(sport=sport, dport=dport),
                                                        64), Rate(100_000), mode=Mode.SINGLE_BURST, count=10, id=n)
               for n, (src, sport, dst, dport) in enumerate(MS_RSS_FLOWS)]
    run(target, *streams)
    stats = dict(line.strip().split(": ") for line in target.sh("ethtool -S p0").splitlines()[1:])
    assert [int(stats[f"rx_queue_{queue}_packets"]) for queue in range(4)] == [10, 0, 30, 10]


def time_squeeze(target) -> list[int]:
    """Each CPU's time_squeeze, the third column of /proc/net/softnet_stat (hex)."""
    return [int(line.split()[2], 16) for line in target.sh("cat /proc/net/softnet_stat").splitlines()]


@pytest.mark.parametrize("budget", [300, 30])
def test_a_saturated_cpu_ends_a_softirq_round_every_netdev_budget_packets(target, router, generator, budget):
    """net_rx_action() stops after netdev_budget packets with work left and counts a
    time_squeeze; the next round carries on, so the CPU forwards as much."""
    observed(generator, "ring", "veth has no RX ring to poll, and net.core.netdev_budget is the host's")
    h0, h1 = router[0], router[1]
    target.sh(f"sysctl -w net.core.netdev_budget={budget}")
    flood = udp_stream(h0, h1, 7, LINE_RATE, size=60)
    forwarded = run(target, flood, duration=0.01).streams[0].ipackets
    assert forwarded == pytest.approx(ROUTING_PPS * 0.01, rel=0.10)
    squeezed, *others = time_squeeze(target)
    assert squeezed == pytest.approx(forwarded / budget, abs=1) and not any(others)


# RFC 2544 -------------------------------------------------------------------------

CONNTRACK_FORWARD = """table ip bench {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state new,established accept
  }
}
"""
SAMPLE = rfc2544.Settings(phases=(rfc2544.Phase.SEARCH,), trial_duration=0.1, relative_width=0.05)


def ndr_sample(target, hosts, scenario: str) -> rfc2544.Report:
    """NDR for 64 and 1518-byte frames from h0 to h1, attached to the Allure result."""
    h0, h1 = hosts[0], hosts[1]
    report = rfc2544.run(target, h0.port, h0.to_dut(dst=h1.ip) / UDP(sport=1024, dport=1024), sizes=(64, 1518),
                         settings=SAMPLE, scenario=scenario)
    plots.attach(report)
    return report


@pytest.mark.parametrize("conntrack", [False, True], ids=["forward", "forward+conntrack"])
def test_rfc2544_sample_forwards_without_loss_up_to_an_ndr(target, router, conntrack):
    if conntrack:
        target.sh("nft -f -", stdin=CONNTRACK_FORWARD)
    report = ndr_sample(target, router, "forwarding" + " through conntrack" * conntrack)
    for size in report.sizes:
        assert size.ndr.lower_pps is not None, report.table()  # the minimum load lost nothing
    if conntrack:  # the one flow, tracked, its replies never seen
        assert [(e.proto, e.original) for e in target.conntrack()] == \
            [("udp", ("10.0.0.2", "10.0.1.2", 1024, 1024))]


@pytest.mark.requires("virtual_time")
def test_rfc2544_ndr_on_the_mock_is_the_calibrated_routing_rate_and_conntrack_lowers_it(target, router):
    """The mock's NDR comes from its cost model, calibrated to the XDP paper: 64-byte
    forwarding at 1.74 Mpps a core (within the calibration's 10%), 1518-byte frames
    at the 10 Gbit/s line rate, 812,743.8 frames/s (10e9 / (8 * (1518 + 20))). A real
    DUT's rates are its machine's: only the model's are known beforehand."""
    forward = ndr_sample(target, router, "forwarding")
    target.sh("nft -f -", stdin=CONNTRACK_FORWARD)
    tracked = ndr_sample(target, router, "forwarding through conntrack")
    small, full = forward.sizes
    assert small.ndr.lower_pps == pytest.approx(ROUTING_PPS, rel=0.10)
    assert (full.ndr.lower_pps, full.ndr.upper_pps) == (pytest.approx(812_743.8), None)
    small_ct, full_ct = tracked.sizes
    assert small_ct.ndr.upper_pps < small.ndr.lower_pps
    assert (full_ct.ndr.lower_pps, full_ct.ndr.upper_pps) == (pytest.approx(812_743.8), None)
