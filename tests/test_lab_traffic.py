"""The netns lab at rate: pjgen (tools/pjgen.c) through NetnsTarget.traffic(), the
drops the kernel counts during a run, and the counters read around it.

Runs against this machine's kernel need root, iproute2, ethtool and a C compiler
(and bpftrace for drop reasons); without them they skip saying so. Parsing the
tracer's map printout and the /proc counters is tested everywhere.
"""
from __future__ import annotations

import os
import shutil

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.dropreason import DropReason
from harness.drivers import generator, load_counters
from harness.drivers.kfree_skb import COUNTED, COUNTED_NF, _counted_event, _counted_stack
from harness.journey import Stage
from harness.target import PORTS, TargetError
from harness.traffic import Mode, Profile, Rate, Stream, read_tag

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "tc", "cc")),
    reason="the netns lab at rate needs root, iproute2, ethtool, procps and a C compiler (gcc)")
needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="drop reasons need bpftrace: apt-get install bpftrace")

P0, P1 = PORTS[0], PORTS[1]
H0_IP, P0_IP, P1_IP, H1_IP = "10.0.0.2", "10.0.0.1", "10.0.1.1", "10.0.1.2"


def _udp(dst: str = H1_IP, dport: int = 9) -> Ether:
    return Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=dst) / UDP(sport=1000, dport=dport)


def _burst(stream_id: int, count: int, pps: float = 100_000, **fields) -> Stream:
    return Stream.of("p0", _udp(**fields), id=stream_id, rate=Rate(pps), mode=Mode.SINGLE_BURST, count=count,
                     latency=True)


@pytest.fixture
def forwarding():
    """p0 10.0.0.1/24, p1 10.0.1.1/24, forwarding on, 10.0.1.2 a permanent neighbour on t1."""
    from harness.drivers.dut import NetnsTarget
    target = NetnsTarget()
    for command in (f"ip addr add {P0_IP}/24 dev p0", f"ip addr add {P1_IP}/24 dev p1",
                    f"ip neigh replace {H1_IP} lladdr {P1.peer_mac} dev p1 nud permanent",
                    "sysctl -w net.ipv4.ip_forward=1"):
        target.sh(command)
    yield target
    target.close()


@needs_lab
def test_a_10k_burst_through_a_forwarding_dut_arrives_complete_per_stream_with_latency(forwarding):
    profile = Profile((_burst(1, 6000), _burst(2, 4000, dport=10)))
    result = forwarding.traffic(profile)
    assert {i: (s.opackets, s.ipackets, s.out_of_order, s.duplicates) for i, s in result.streams.items()} == {
        1: (6000, 6000, 0, 0), 2: (4000, 4000, 0, 0)}
    assert (result.ports["p0"].opackets, result.ports["p1"].ipackets, result.ports["p0"].ipackets) == (10000, 10000, 0)
    assert result.ports["p1"].ibytes == 10000 * 60  # 60-byte frames, forwarded as they came
    for stream in result.streams.values():
        latency = stream.latency
        assert 0 < latency.min_us <= latency.avg_us <= latency.max_us
        assert sum(latency.histogram.values()) == stream.ipackets
    assert result.losses == []
    assert 0.0599 < result.duration < 1.0  # the 6000th packet at 100 kpps is due after 59.99 ms


@needs_lab
@needs_bpftrace
def test_an_nft_drop_rule_shows_in_losses_with_netfilter_drop_at_the_forward_hook(forwarding):
    forwarding.sh(["nft", "-f", "-"], stdin="table ip filter {\n chain forward {\n"
                  "  type filter hook forward priority 0; policy accept;\n  udp dport 9 counter drop\n }\n}\n")
    result = forwarding.traffic(Profile((_burst(1, 3000), _burst(2, 2000, dport=10))))
    assert (result.streams[1].ipackets, result.streams[2].ipackets) == (0, 2000)
    assert [(loss.stage, loss.reason, loss.packets) for loss in result.losses] == [
        (Stage.NF_FORWARD, DropReason.NETFILTER_DROP, 3000)]
    assert "nft ip filter forward: udp dport 9 counter drop: +3000 packets" in result.notes
    # drops after the run are reported one by one again, and the run's are not among them
    forwarding.send("p0", _udp())
    assert [(drop.reason, drop.stage) for drop in forwarding.drops()] == [
        (DropReason.NETFILTER_DROP, Stage.NF_FORWARD)]


@needs_lab
def test_tags_carry_stream_and_sequence_with_a_valid_udp_checksum_to_a_dut_socket(forwarding):
    """The DUT's UDP stack drops a datagram whose checksum is wrong (UDP_CSUM): every
    tagged datagram reaching the socket proves pjgen fixed it. Nothing comes back, so
    the run ends when the DUT's counters stay still."""
    sock = forwarding.socket("udp", (P0_IP, 7000), rcvbuf=1 << 22)
    stream = Stream.of("p0", _udp(dst=P0_IP, dport=7000) / (b"\x11" * 40), id=7, rate=Rate(20_000),
                       mode=Mode.SINGLE_BURST, count=200)
    result = forwarding.traffic(Profile((stream,)))
    datagrams = sock.recv_all()
    assert len(datagrams) == 200
    tags = [read_tag(bytes(_udp(dst=P0_IP, dport=7000) / payload)) for payload, _ in datagrams]
    assert [(stream_id, seq) for stream_id, seq, _ in tags] == [(7, seq) for seq in range(200)]
    assert all(payload[:24] == b"\x11" * 24 and len(payload) == 40 for payload, _ in datagrams)  # the tag is the last 16
    assert (result.streams[7].opackets, result.streams[7].ipackets) == (200, 0)


@needs_lab
def test_a_continuous_stream_sends_its_rate_for_the_duration(forwarding):
    stream = Stream.of("p0", _udp(), id=1, rate=Rate(20_000))
    result = forwarding.traffic(Profile((stream,)), duration=0.5)
    # every packet due within the duration is sent, late ones as soon as the sender runs
    assert abs(result.streams[1].opackets - 10_000) <= 1
    assert result.streams[1].ipackets == result.streams[1].opackets


@needs_lab
def test_a_multi_burst_stream_leaves_the_gap_between_its_bursts(forwarding):
    stream = Stream.of("p0", _udp(), id=1, rate=Rate(10_000), mode=Mode.MULTI_BURST, count=100, bursts=3, ibg=0.05)
    result = forwarding.traffic(Profile((stream,)))
    assert (result.streams[1].opackets, result.streams[1].ipackets) == (300, 300)
    # three bursts of 99 gaps of 100 us, and two gaps of 50 ms between them
    assert 3 * 99 / 10_000 + 2 * 0.05 <= result.duration < 1.0


@needs_lab
@pytest.mark.parametrize("tx", generator.TX_METHODS)
def test_both_tx_methods_send_every_packet_tagged_in_order(forwarding, tx):
    profile = Profile((_burst(1, 2000),))
    with generator.GeneratorRun(forwarding.lab, profile, None, tx) as run:
        run.wait_sent(generator.STARTUP_TIMEOUT)
        assert run.finished(generator.STARTUP_TIMEOUT)  # every tagged packet arrived
        stats = run.stats()
    assert stats["tx"] == tx
    measured = stats["streams"][0]
    assert (measured["opackets"], measured["ipackets"], measured["out_of_order"], measured["duplicates"]) == (
        2000, 2000, 0, 0)


@needs_lab
def test_a_run_without_its_receiver_counts_nothing_and_the_dut_forwards_every_frame(forwarding):
    def p1_tx_packets() -> int:
        proc_net_dev = forwarding.sh("cat /proc/net/dev")
        return load_counters.device_counters(proc_net_dev, load_counters.PROC_NET_DEV_TX_PACKETS)["p1"]["tx_packets"]
    before = p1_tx_packets()
    with generator.GeneratorRun(forwarding.lab, Profile((_burst(1, 2000),)), None, receive=False) as run:
        run.wait_sent(generator.STARTUP_TIMEOUT)
        assert not run.finished(0.2)  # nothing counts the tagged packets arriving
        stats = run.stats()
    assert stats["ports"] == {}
    assert (stats["streams"][0]["opackets"], stats["streams"][0]["ipackets"]) == (2000, 0)
    assert p1_tx_packets() - before == 2000


@needs_lab
def test_frames_sent_and_expected_after_a_run_are_unaffected_by_it(forwarding):
    forwarding.traffic(Profile((_burst(1, 1000),)))
    forwarding.send("p0", _udp(dport=11))
    forwarded = Ether(src=P1.mac, dst=P1.peer_mac) / IP(src=H0_IP, dst=H1_IP, ttl=63) / UDP(sport=1000, dport=11)
    forwarding.expect("p1", forwarded)
    forwarding.expect_nothing()


@needs_lab
def test_a_rate_over_the_generators_measured_limit_is_refused_naming_it(forwarding):
    too_fast = Stream.of("p0", _udp(), id=1, rate=Rate(100, "percent"), mode=Mode.SINGLE_BURST, count=10)
    with pytest.raises(TargetError, match=r"p0: the pjgen .* generator offers too little per port: 14.88 Mpps"):
        forwarding.traffic(Profile((too_fast,)))


# parsing, everywhere ----------------------------------------------------------------

def test_counted_drops_parse_from_bpftraces_map_printout_with_the_hook_from_the_stack():
    plain = COUNTED.match("@counted[4026532500, 2, ip_rcv_core, 1]: 17\n")
    assert plain.groups() == ("4026532500", "2", "ip_rcv_core", "1", "17")
    head = COUNTED_NF.match("@counted_nf[4026532500, nft_do_chain, \n")
    stack, packets = _counted_stack(iter(["    nft_do_chain+230\n", "    nf_hook_slow+65\n",
                                          "    ip_forward.constprop.0+1150\n", "]: 3000\n"]))
    assert (stack, packets) == (("nft_do_chain", "nf_hook_slow", "ip_forward"), 3000)
    event = _counted_event(head[1], 5, head[2], stack, None)
    assert event.stage(DropReason.NETFILTER_DROP) == Stage.NF_FORWARD


def test_softnet_stat_counters_are_read_by_the_cpu_column_in_hex():
    text = ("0000012a 00000003 00000001 00000000 00000000 00000000 00000000 00000000 00000000 "
            "00000000 00000000 00000000 00000000 00000000 00000000\n"
            "00000010 00000000 0000000b 00000000 00000000 00000000 00000000 00000000 00000000 "
            "00000000 00000000 00000000 00000002 00000000 00000000\n")
    assert load_counters.softnet_counters(text) == {
        (0, "processed"): 298, (0, "dropped"): 3, (0, "time_squeeze"): 1,
        (2, "processed"): 16, (2, "dropped"): 0, (2, "time_squeeze"): 11}


def test_pjgen_spec_sends_each_stream_from_the_tester_end_of_its_port():
    stream = Stream.of("p1", _udp(), id=3, rate=Rate(1000), mode=Mode.MULTI_BURST, count=5, bursts=2, ibg=0.25)
    lines = generator.spec(Profile((stream,)), None).splitlines()
    assert lines[:4] == ["tx sendmmsg", "duration_ns 0", "rx t0 t1 t2", "stream 3 t1 1000.0 m 5 2 250000000 1"]
    assert bytes.fromhex(lines[4]) == stream.frame


def test_pjgen_spec_without_the_receiver_names_no_port_to_receive_on():
    stream = Stream.of("p1", _udp(), id=3, rate=Rate(1000), mode=Mode.SINGLE_BURST, count=5)
    assert generator.spec(Profile((stream,)), None, receive=False).splitlines()[2] == "rx"


def test_counters_that_grew_are_notes_and_those_naming_a_drop_are_losses():
    before = load_counters.Snapshot(
        devices={("tester", "t0", "tx_dropped"): 5, ("DUT", "p1", "rx_dropped"): 0},
        qdiscs={("p1", "tbf", "1:", "drops"): 10, ("p1", "tbf", "1:", "overlimits"): 0},
        softnet={(0, "processed"): 100, (0, "dropped"): 1, (1, "time_squeeze"): 0},
        nft_drops={"ip filter forward: udp dport 9 counter drop": 0})
    after = load_counters.Snapshot(
        devices={("tester", "t0", "tx_dropped"): 7, ("DUT", "p1", "rx_dropped"): 0},
        qdiscs={("p1", "tbf", "1:", "drops"): 40, ("p1", "tbf", "1:", "overlimits"): 90},
        softnet={(0, "processed"): 900, (0, "dropped"): 4, (1, "time_squeeze"): 2},
        nft_drops={"ip filter forward: udp dport 9 counter drop": 25})
    losses, notes = load_counters.compare(before, after)
    assert [(loss.stage, loss.reason, loss.where, loss.packets) for loss in losses] == [
        (Stage.QDISC, DropReason.QDISC_DROP, "qdisc tbf 1: dev p1", 30),
        (Stage.NAPI, DropReason.CPU_BACKLOG, "softnet_stat cpu0 (whole host)", 3),
        (Stage.NF, DropReason.NETFILTER_DROP, "nft ip filter forward: udp dport 9 counter drop", 25)]
    assert notes == [
        "tester t0 tx_dropped +2",
        "qdisc tbf 1: dev p1 drops +30",
        "qdisc tbf 1: dev p1 overlimits +90",
        "softnet_stat cpu0 dropped +3 (per CPU for the whole host, not the DUT's namespace alone)",
        "softnet_stat cpu1 time_squeeze +2 (per CPU for the whole host, not the DUT's namespace alone)",
        "nft ip filter forward: udp dport 9 counter drop: +25 packets"]


def test_proc_net_dev_drop_counters_by_device():
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
            "colls carrier compressed\n"
            "    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0"
            "     0       0          0\n"
            "    t0: 6000000  100000    0    7    0     0          0         0  9000000  150000    0   31    0"
            "     0       0          0\n")
    assert load_counters.device_counters(text) == {"lo": {"rx_dropped": 0, "tx_dropped": 0},
                                                   "t0": {"rx_dropped": 7, "tx_dropped": 31}}
    assert load_counters.device_counters(text, load_counters.PROC_NET_DEV_TX_PACKETS)["t0"] == {"tx_packets": 150000}


def test_pjgen_statistics_become_a_result_by_dut_port_and_stream_with_what_went_wrong_noted():
    into_p0 = Stream.of("p0", _udp(), id=1, rate=Rate(1000), mode=Mode.SINGLE_BURST, count=100, latency=True)
    into_p1 = Stream.of("p1", _udp(), id=2, rate=Rate(1000), mode=Mode.SINGLE_BURST, count=50)
    latency = {"n": 98, "min_ns": 2000, "max_ns": 90000, "sum_ns": 98 * 5000, "jitter_ns": 1500.0,
               "histogram_us": {"2": 60, "5": 30, "90": 8}}
    stats = {"event": "stats", "tx": "sendmmsg", "tx_ns": 200_000_000, "rx_ns": 200_100_000,
             "ports": {"t0": {"ipackets": 0, "ibytes": 0, "untagged": 0, "ring_drops": 0},
                       "t1": {"ipackets": 98, "ibytes": 98 * 60, "untagged": 0, "ring_drops": 2},
                       "t2": {"ipackets": 52, "ibytes": 50 * 60 + 2 * 42, "untagged": 2, "ring_drops": 0}},
             "streams": [{"id": 1, "port": "t0", "tagged": True, "opackets": 100, "obytes": 6000, "ipackets": 98,
                          "ibytes": 98 * 60, "out_of_order": 1, "duplicates": 0, "latency": latency},
                         {"id": 2, "port": "t1", "tagged": True, "opackets": 50, "obytes": 3000, "ipackets": 50,
                          "ibytes": 3000, "out_of_order": 0, "duplicates": 0, "latency": latency}]}
    result = generator.to_result(Profile((into_p0, into_p1)), None, stats)
    assert (result.target, result.duration) == ("dut", 0.2)
    first = result.streams[1]
    assert (first.opackets, first.ipackets, first.out_of_order, first.lost, first.tx_pps) == (100, 98, 1, 2, 500.0)
    assert first.tx_bps_L1 == (6000 + 100 * 24) * 8 / 0.2
    assert (first.latency.min_us, first.latency.avg_us, first.latency.max_us, first.latency.jitter_us) == (
        2.0, 5.0, 90.0, 1.5)
    assert first.latency.histogram == {2: 60, 5: 30, 90: 8}
    assert result.streams[2].latency is None  # the stream asked for none
    assert {name: (port.opackets, port.ipackets) for name, port in result.ports.items()} == {
        "p0": (100, 0), "p1": (50, 98), "p2": (0, 52)}
    assert result.ports["p1"].rx_bps == (98 * 60 + 98 * 4) * 8 / 0.2
    assert result.notes == [
        "the streams were due to end after 0.099 s and ended after 0.200 s: the generator fell behind their rates "
        "and sent late packets as soon as it could",
        "the receiver's ring on t1 was full for 2 frames p1 sent: lost by the tester, not by the DUT",
        "t2 received 2 frames from p2 that no stream sent (no payload tag of this run): ARP, ICMP errors, ..."]
