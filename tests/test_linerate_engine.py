"""The mock's line-rate model (harness/mockkernel/linerate/): RSS, and traffic
through MockTarget.traffic() in virtual time."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.core.rss import toeplitz_hash
from harness.mockkernel.linerate.trains import path_text
from harness.mockkernel.target import MockTarget
from harness.target import PORTS
from harness.traffic import IMIX, Loss, Mode, Profile, Rate, RateUnit, Stream, Vary, VaryMode

# Microsoft's RSS verification suite ("Verifying the RSS Hash Calculation"), the
# key and the IPv4 vectors NIC datasheets repeat (82599 datasheet 7.1.2.8.3)
MS_RSS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")


@pytest.mark.parametrize("src, sport, dst, dport, ipv4_hash, ipv4_l4_hash", [
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a),
    ("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f),
    ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2),
])
def test_toeplitz_hash_matches_the_microsoft_rss_verification_vectors(src, sport, dst, dport, ipv4_hash,
                                                                     ipv4_l4_hash):
    addrs = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    assert toeplitz_hash(MS_RSS_KEY, addrs) == ipv4_hash
    assert toeplitz_hash(MS_RSS_KEY, addrs + ports) == ipv4_l4_hash


def test_a_nic_with_receive_hashing_on_gives_skb_hash_the_rss_hash_of_the_frame(bpf_objects):
    """Microsoft's first vector, 66.9.149.187:2794 -> 161.142.100.80:1766, hashes to
    0x51ccc178 under their key. tc_hash_mark copies skb->hash to the mark, which nft
    counts: 0 with rxhash off (the default), the RSS hash with it on. Mock only: the
    lab's veth has no receive hashing ("receive-hashing: off [fixed]")."""
    target = MockTarget()
    target.sh("ethtool -X p0 hkey " + ":".join(f"{byte:02x}" for byte in MS_RSS_KEY))
    target.sh("tc qdisc add dev p0 clsact")
    target.sh(f"tc filter add dev p0 ingress bpf da obj {bpf_objects['tc_hash_mark']} sec tc")
    target.sh("nft -f -", stdin="table ip t { chain c { type filter hook prerouting priority 0; "
                                "meta mark 0 counter; meta mark 0x51ccc178 counter; }; }")
    frame = Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="66.9.149.187", dst="161.142.100.80") / \
        UDP(sport=2794, dport=1766)
    target.send("p0", frame)
    target.sh("ethtool -K p0 rxhash on")
    target.send("p0", frame)

    assert [c.packets for c in target.counters()] == [1, 1]


# traffic through the engine ----------------------------------------------------
SRC, DST = "10.0.0.2", "10.0.1.2"  # a host behind p0 sends to one behind p1
FORWARD = ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
           f"ip neigh replace {SRC} lladdr {PORTS[0].peer_mac} dev p0 nud permanent",
           f"ip neigh replace {DST} lladdr {PORTS[1].peer_mac} dev p1 nud permanent",
           "sysctl -w net.ipv4.ip_forward=1")
CONNTRACK_RULES = """table inet filter {
  chain forward {
    type filter hook forward priority 0;
    ct state new counter accept
    counter accept
  }
}
"""


def forwarding_target(rules: str | None = None) -> MockTarget:
    target = MockTarget()
    for command in FORWARD:
        target.sh(command)
    if rules is not None:
        target.sh("nft -f -", stdin=rules)
    return target


def udp_frame(sport: int = 1000, dport: int = 2000, src: str = SRC, dst: str = DST, port: int = 0) -> bytes:
    return bytes(Ether(src=PORTS[port].peer_mac, dst=PORTS[port].mac) / IP(src=src, dst=dst) /
                 UDP(sport=sport, dport=dport) / (b"x" * 18))


def burst(frame: bytes, count: int, pps: float, port: str = "p0", **fields) -> Stream:
    return Stream.of(port, frame, rate=Rate(pps), mode=Mode.SINGLE_BURST, count=count, **fields)


def functional_paths(journeys) -> dict[str, int]:
    paths: dict[str, int] = {}
    for journey in journeys:
        paths[path_text(journey)] = paths.get(path_text(journey), 0) + 1
    return paths


@pytest.mark.parametrize("pps", [1_000.0, 10_000_000.0])
def test_a_few_packets_through_the_engine_take_the_paths_and_leave_the_state_of_the_functional_path(pps):
    """At a slow rate every packet is its own train; at 10 Mpps the five arrive in one
    slice and all but the probes go in bulk: the same paths, counters and conntrack."""
    frame = udp_frame()
    engine = forwarding_target(CONNTRACK_RULES)
    result = engine.traffic(Profile((burst(frame, 5, pps),)))
    functional = forwarding_target(CONNTRACK_RULES)
    functional.send("p0", [frame] * 5)
    sent = functional.collect("p1")

    assert dict(result.paths) == functional_paths(functional.journeys())
    assert [j.render() for j in engine.journeys()] == [j.render() for j in functional.journeys()][
        :len(engine.journeys())]
    assert len(engine.journeys()) >= 3  # the first packet, and two probes that agree
    assert engine.counters() == functional.counters()
    assert engine.conntrack() == functional.conntrack()
    assert result.ports["p1"].ipackets == len(sent) == 5
    assert result.ports["p1"].ibytes == sum(map(len, sent))
    assert result.streams[0].ipackets == 5 and result.losses == []
    assert engine.sh("ip -s link show dev p1") == functional.sh("ip -s link show dev p1")


def test_a_burst_larger_than_the_ring_loses_exactly_the_excess_at_the_ring():
    """rx-usecs 1000: the interrupt comes 1 ms after the first frame, long after the
    300 frames (20 us at 10 Gbit/s) filled the 256 descriptors."""
    target = forwarding_target()
    target.sh("ethtool -C p0 rx-usecs 1000")
    result = target.traffic(Profile((burst(udp_frame(), 300, 14_880_952.0, latency=True),)))

    assert result.losses == [Loss("NIC_RX", "FULL_RING", "p0 rx_missed_errors", 44)]
    assert result.streams[0].ipackets == result.ports["p1"].ipackets == 256
    nic = target.kernel.nics["p0"]
    assert nic.dev.stats.rx_missed_errors == nic.rx_queue(0).drops == 44
    assert nic.rx_queue(0).packets == nic.dev.stats.rx_packets == 256
    assert ("NIC_RX[p0] -> MISSED > DROP FULL_RING at NIC_RX in p0 rx_missed_errors", 44) in result.paths
    assert target.kernel.dev_by_name("p1").stats.tx_packets == 256
    assert 1000 < result.streams[0].latency.min_us < 1001  # each waited for the interrupt


def test_imix_over_700_flows_below_the_cpus_capacity_waits_no_longer_than_a_full_ring_takes():
    """50% of 10G in IMIX is 1.64 Mpps; forwarding costs 574.7 ns (cost.py), 94% of a
    core: nothing is lost, and no packet can wait longer than 256 descriptors take to
    drain (147 us) plus its two 1518-byte serialisations (2.5 us). The settled flows' trains
    stand for up to 50 ms of their packets: that must not show as latency."""
    target = forwarding_target()
    stream = Stream.of("p0", udp_frame(), rate=Rate(50, RateUnit.PERCENT), sizes=IMIX, latency=True,
                       vary=(Vary("ip.src", 100), Vary("udp.sport", 7, VaryMode.RANDOM)))
    result = target.traffic(Profile((stream,)), duration=0.2)

    stats = result.streams[0]
    assert stats.ipackets == stats.opackets == 327_368
    assert stats.latency.max_us < 150


def test_two_streams_asking_the_whole_line_each_share_it():
    """Each asks 100% of 10G in 64-byte frames (14,880,952.38 pps): together they get
    the line, 7,440,476.19 pps each; in 1 ms each sends the 7,441 packets due."""
    target = forwarding_target()
    streams = tuple(Stream.of("p0", udp_frame(sport=1000 + i), id=i) for i in range(2))
    result = target.traffic(Profile(streams), duration=0.001)

    assert [result.streams[i].opackets for i in range(2)] == [7_441, 7_441]
    assert round(result.streams[0].tx_pps) == 7_440_476


def test_xdp_drop_flood_leaves_nft_counters_at_zero_while_an_nft_drop_rule_counts_every_packet(bpf_objects):
    rules = """table ip raw {
  chain prerouting {
    type filter hook prerouting priority -300;
    udp dport 2000 counter drop
  }
}
"""
    frame = udp_frame()
    flood = Stream.of("p0", frame)  # 100% of 10 Gbit/s: 14.88 Mpps
    xdp = forwarding_target(rules)
    xdp.sh(f"ip link set dev p0 xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    dropped_by_xdp = xdp.traffic(Profile((flood,)), duration=0.01)
    sent = dropped_by_xdp.streams[0].opackets
    assert sent == 148_810  # packets due at k / 14,880,952.38 s < 10 ms: k = 0 .. 148,809
    assert [c.packets for c in xdp.counters()] == [0]
    assert dropped_by_xdp.losses == [Loss("XDP", "NOT_SPECIFIED", "veth_xdp_rcv_skb", sent)]
    assert len(xdp.journeys()) < 100  # the probes' journeys; the rest counted in paths
    assert dropped_by_xdp.paths == [("NIC_RX[p0] -> DMA (rx ring of 256) > NAPI[p0 poll] (softirq round 1) > "
                                     "XDP[p0] -> DROP > DROP NOT_SPECIFIED at XDP in veth_xdp_rcv_skb", sent)]

    nft = forwarding_target(rules)
    slow = Stream.of("p0", frame, rate=Rate(1_000_000.0))  # what the CPU keeps up with
    dropped_by_nft = nft.traffic(Profile((slow,)), duration=0.01)
    assert [c.packets for c in nft.counters()] == [dropped_by_nft.streams[0].opackets] == [10_000]
    assert dropped_by_nft.losses == [Loss("NF_PREROUTING", "NETFILTER_DROP", "nft_do_chain", 10_000)]


def reference_toeplitz(key: bytes, data: bytes) -> int:
    """The Microsoft RSS specification's pseudo-code: a 32-bit window slides
    over the key one bit per input bit."""
    window, next_bit, result = int.from_bytes(key[:4], "big"), 32, 0
    for byte in data:
        for bit in range(7, -1, -1):
            if byte >> bit & 1:
                result ^= window
            window = (window << 1 | key[next_bit // 8] >> (7 - next_bit % 8) & 1) & 0xFFFFFFFF
            next_bit += 1
    return result


def test_rss_spreads_100_flows_over_4_queues_by_the_toeplitz_hash_of_their_tuples():
    target = forwarding_target()
    target.sh("ethtool -L p0 combined 4")
    target.sh(f"ethtool -X p0 hkey {MS_RSS_KEY.hex(':')}")
    flows = Stream.of("p0", udp_frame(sport=1000), rate=Rate(1_000_000.0), mode=Mode.SINGLE_BURST, count=1000,
                      vary=(Vary("udp.sport", 100),))
    result = target.traffic(Profile((flows,)))

    addrs = ipaddress.IPv4Address(SRC).packed + ipaddress.IPv4Address(DST).packed
    expected = [0] * 4
    for sport in range(1000, 1100):  # 10 packets each; the default table maps hash % 128 to queue % 4
        expected[reference_toeplitz(MS_RSS_KEY, addrs + struct.pack("!HH", sport, 2000)) % 128 % 4] += 10
    nic = target.kernel.nics["p0"]
    assert [nic.rx_queue(i).packets for i in range(4)] == expected
    assert all(expected) and result.streams[0].ipackets == 1000
    softnet = target.kernel.softnet  # queues 0 and 2 on CPU 0, 1 and 3 on CPU 1
    assert [cpu.processed for cpu in softnet] == [expected[0] + expected[2], expected[1] + expected[3]]


def saturating_flood() -> Stream:
    return Stream.of("p0", udp_frame())  # 14.88 Mpps: more than a CPU forwards


def test_a_smaller_netdev_budget_squeezes_more_softirq_rounds_and_forwards_as_many_packets():
    results = {}
    for budget in (300, 30):
        target = forwarding_target()
        target.sh(f"sysctl -w net.core.netdev_budget={budget}")
        result = target.traffic(Profile((saturating_flood(),)), duration=0.01)
        results[budget] = (result.streams[0].ipackets, target.kernel.softnet[0].time_squeeze)
    (forwarded, squeezed), (forwarded_small, squeezed_small) = results[300], results[30]
    assert forwarded_small == forwarded
    # a saturated CPU ends a round every budget packets with work left (but while the ring first fills)
    assert squeezed == pytest.approx(forwarded / 300, abs=1)
    assert squeezed_small == pytest.approx(forwarded / 30, abs=2)


def test_a_queue_that_keeps_up_waits_half_a_napi_weight_of_a_flooded_queue_on_its_cpu():
    """p0's and p1's queue 0 are both served by CPU 0: a light flow from p1 waits,
    on average, for half a poll (NAPI_POLL_WEIGHT packets) of p0's flood."""
    light = Stream.of("p1", udp_frame(src=DST, dst=SRC, port=1), rate=Rate(10_000.0), latency=True, id=1)
    alone, shared = forwarding_target(), forwarding_target()
    quiet = alone.traffic(Profile((light,)), duration=0.01).streams[1].latency
    flooded = shared.traffic(Profile((saturating_flood(), light)), duration=0.01)
    flood_only = forwarding_target().traffic(Profile((saturating_flood(),)), duration=0.01)
    per_packet_s = 1 / flood_only.streams[0].rx_pps  # the flood's cost on a saturated CPU
    waited_us = flooded.streams[1].latency.avg_us - quiet.avg_us
    assert waited_us == pytest.approx(64 / 2 * per_packet_s * 1e6, rel=0.05)
    assert flooded.streams[1].ipackets == 100


def test_a_flood_through_an_nft_limit_passes_the_limits_rate_and_its_burst():
    """limit rate 10000/second (burst 5): over 10 ms of a 1 Mpps flood, 5 packets of
    burst and 100 of rate pass, the rest drop; trains are cut where the bucket
    could fill up, so no refill is lost between them (at most the first burst)."""
    target = forwarding_target("""table inet filter {
  chain forward {
    type filter hook forward priority 0;
    limit rate 10000/second counter accept
    counter drop
  }
}
""")
    result = target.traffic(Profile((Stream.of("p0", udp_frame(), rate=Rate(1_000_000.0)),)), duration=0.01)
    accepted, dropped = (counter.packets for counter in target.counters())
    assert 100 <= accepted <= 105
    assert accepted + dropped == result.streams[0].opackets == 10_000
    assert result.streams[0].ipackets == accepted
    assert result.losses == [Loss("NF_FORWARD", "NETFILTER_DROP", "nft_do_chain", dropped)]


def test_a_flood_through_tbf_leaves_at_its_rate_and_the_qdisc_drops_the_rest():
    """tbf rate 10mbit burst 10kb latency 50ms (tc's limit: rate x latency + burst =
    72740 bytes): 0.2 s of a 100 kpps flood delivers the rate's 250000 bytes, the
    burst, and the full queue drained after the run; everything else is dropped by
    the qdisc, as `tc -s` counts it."""
    target = forwarding_target()
    target.sh("tc qdisc add dev p1 root tbf rate 10mbit burst 10kb latency 50ms")
    flood = Stream.of("p0", udp_frame(), rate=Rate(100_000.0), latency=True)
    result = target.traffic(Profile((flood,)), duration=0.2)
    tbf = target.kernel.dev_by_name("p1").qdisc
    delivered = result.streams[0].ipackets
    assert delivered * 60 == tbf.bytes == pytest.approx(10e6 / 8 * 0.2 + 10240 + 72740, rel=0.01)
    assert delivered == tbf.packets == target.kernel.dev_by_name("p1").stats.tx_packets
    assert result.losses == [Loss("QDISC", "QDISC_DROP", "__dev_queue_xmit", tbf.drops)]
    assert delivered + tbf.drops == 20_000 and tbf.overlimits > 0 and tbf.qlen == 0
    # a packet that found the queue full waited for all of it at the rate: 72740 bytes at 1.25 MB/s
    assert result.streams[0].latency.max_us == pytest.approx(72740 / 1.25e6 * 1e6, rel=0.03)


def redirect_flood(port: int) -> Stream:
    """Line rate into `port`, whose TC ingress redirects each frame into p1's
    ingress (tc_redirect, BPF_F_INGRESS: netif_rx()); on p1 the frame is
    another host's (ip_rcv_core() frees it OTHERHOST)."""
    frame = bytes(Ether(src=PORTS[port].peer_mac, dst=PORTS[port].mac) / IP(src=SRC, dst="10.0.0.1") /
                  UDP(sport=1000, dport=2000) / bytes([3, 1]) / (b"x" * 16))
    return Stream.of(f"p{port}", frame, id=port)


def redirecting_target(bpf_objects, ports: tuple[int, ...]) -> MockTarget:
    target = MockTarget()
    for port in ports:
        target.sh(f"tc qdisc add dev p{port} clsact")
        target.sh(f"tc filter add dev p{port} ingress bpf da obj {bpf_objects['tc_redirect']} sec tc")
    return target


def backlog_losses(result) -> int:
    return sum(loss.packets for loss in result.losses if loss.reason == "CPU_BACKLOG")


def test_two_floods_into_one_cpus_backlog_lose_what_its_polls_cannot_take(bpf_objects):
    """p0's and p2's queue 0 are both on CPU 0 and both redirect into the backlog:
    a round polls each queue 64 packets and the backlog 64 (dev_weight), so the
    backlog fills at half the rate it is fed. Once it holds 1001
    (netdev_max_backlog + 1) it drops half of what comes, and those 1001 are
    processed when the rings run dry: delivered - dropped = 2 x 1001 (each flow's
    fraction of a dropped packet goes through: up to 2 x 2 more)."""
    target = redirecting_target(bpf_objects, (0, 2))
    result = target.traffic(Profile((redirect_flood(0), redirect_flood(2))), duration=0.01)

    by_reason = {loss.reason: loss.packets for loss in result.losses if loss.reason != "FULL_RING"}
    assert by_reason["OTHERHOST"] - by_reason["CPU_BACKLOG"] == pytest.approx(2004, abs=2)
    assert sum(loss.packets for loss in result.losses) == sum(stream.opackets for stream in result.streams.values())
    softnet_dropped = int(target.sh("cat /proc/net/softnet_stat").splitlines()[0].split()[1], 16)
    assert softnet_dropped == by_reason["CPU_BACKLOG"] == backlog_losses(result)
    backlog_drop = " > DROP CPU_BACKLOG at NIC_RX in enqueue_to_backlog"
    assert [count for path, count in result.paths if path.endswith(backlog_drop)] == [by_reason["CPU_BACKLOG"] / 2] * 2
    assert ("NIC_RX[p2] -> netif_rx on cpu0" + backlog_drop, by_reason["CPU_BACKLOG"] / 2) in result.paths


def test_one_flood_through_the_backlog_loses_nothing_there(bpf_objects):
    """One queue and the backlog polled in turn, 64 packets each: the backlog
    drains as fast as it is fed, whatever the CPU cannot take is lost at the ring."""
    target = redirecting_target(bpf_objects, (0,))
    result = target.traffic(Profile((redirect_flood(0),)), duration=0.01)

    assert backlog_losses(result) == 0
    assert {loss.reason for loss in result.losses} == {"OTHERHOST", "FULL_RING"}
