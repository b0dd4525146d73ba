"""The mock's memory stays bounded however many packets a test sends: the
journeys of its first packets are kept whole and the rest summarised as paths
with packet counts; frames nobody collects are kept up to as many, then dropped
and counted. (How much memory: benchmarks/memory.py.)"""
from __future__ import annotations

import re
from collections import Counter

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.journey import path_text, render_all
from harness.mockkernel import tracer
from harness.mockkernel.target import MockTarget
from harness.report.journey_map import journey_map_svg
from harness.target import ExpectError

pytest_plugins = ["pytester"]

H0_MAC, H1_MAC = "02:00:00:00:01:01", "02:00:00:00:01:02"


def _router(journey_limit: int) -> MockTarget:
    """p0 10.0.0.1/24 (h0 10.0.0.2), p1 10.0.1.1/24 (h1 10.0.1.2), forwarding, no default route."""
    dut = MockTarget(journey_limit=journey_limit)
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    dut.sh("ip addr add 10.0.1.1/24 dev p1")
    dut.sh(f"ip neigh replace 10.0.0.2 lladdr {H0_MAC} dev p0 nud permanent")
    dut.sh(f"ip neigh replace 10.0.1.2 lladdr {H1_MAC} dev p1 nud permanent")
    dut.sh("sysctl -w net.ipv4.ip_forward=1")
    return dut


def _udp(dst: str, ident: int) -> Ether:
    return Ether(src=H0_MAC, dst="02:00:00:00:00:01") / IP(src="10.0.0.2", dst=dst, id=ident) / UDP(sport=1, dport=9)


# six forwarded to h1, then four with no route (answered with ICMP errors, child journeys, as the rate limit allows)
TRAFFIC = [_udp("10.0.1.2", i) for i in range(6)] + [_udp("192.0.2.1", i) for i in range(6, 10)]


def test_a_test_sending_more_packets_than_the_limit_sees_the_first_journeys_whole_and_the_rest_as_path_counts():
    whole, limited = _router(journey_limit=100), _router(journey_limit=4)
    for dut in (whole, limited):
        dut.send("p0", TRAFFIC)
    reference = whole.journeys()
    assert len(reference) == 10 and reference.summarised == 0
    journeys = limited.journeys()
    assert [j.render() for j in journeys] == [j.render() for j in reference[:4]]
    assert journeys.summarised == 6
    assert journeys.paths == Counter(path_text(journey) for journey in reference[4:]).most_common()
    forwarded = [packets for path, packets in journeys.paths if path.endswith("NIC_TX[p1] -> XMIT")]
    no_route = [packets for path, packets in journeys.paths if "DROP IP_INNOROUTES at ROUTING in ip_error" in path]
    assert forwarded == [2] and sum(no_route) == 4
    text = render_all(journeys)
    assert text.startswith(reference[0].render())
    assert text.endswith("\n(6 more packets after the first 4, summarised by path; raise the limit with --journey-limit "
                         "or @pytest.mark.journey_limit(N) to see them whole)\n"
                         + "\n".join(f"{packets:>8} x {path}" for path, packets in journeys.paths))
    diagram = journey_map_svg(journeys)  # the paths of the packets kept whole and of those summarised, together
    assert ">10 packets on " in diagram
    assert re.search(r">path 1 of \d+: 6 packets \(60%\)</text>", diagram)  # 4 forwarded kept whole, 2 summarised


def test_a_packet_parked_in_a_neighbour_queue_is_summarised_once_it_leaves_with_its_whole_path():
    whole, limited = _router(journey_limit=100), _router(journey_limit=0)
    arp_reply = Ether(src="02:00:00:00:01:03", dst="02:00:00:00:00:02") / \
        ARP(op=2, hwsrc="02:00:00:00:01:03", psrc="10.0.1.3", hwdst="02:00:00:00:00:02", pdst="10.0.1.1")
    for dut in (whole, limited):
        dut.send("p0", _udp("10.0.1.3", 1))
    parked = limited.journeys()
    assert len(parked) == 1, "the packet waiting for ARP is still going somewhere: kept whole"
    assert str(parked[0].hops[-1]) == "NEIGH[__neigh_event_send] -> QUEUED (INCOMPLETE)"
    assert parked.summarised == 1  # the ARP request it caused
    del parked  # a journey the test still holds would be left whole too
    for dut in (whole, limited):
        dut.send("p1", arp_reply)
    reference = whole.journeys()
    queued_path = path_text(reference[0])
    assert "QUEUED (INCOMPLETE)" in queued_path and queued_path.endswith("NIC_TX[p1] -> XMIT")
    journeys = limited.journeys()
    assert list(journeys) == []
    assert sorted(journeys.paths) == sorted((path_text(journey), 1) for journey in reference)


def test_drops_after_the_limit_are_counted_in_the_paths_not_kept():
    dut = _router(journey_limit=2)
    dut.send("p0", TRAFFIC[6:])
    assert [drop.reason for drop in dut.drops()] == ["IP_INNOROUTES", "IP_INNOROUTES"]
    assert dut.journeys().summarised == 2


def test_packets_on_more_distinct_paths_than_are_counted_one_by_one_are_counted_together(monkeypatch):
    monkeypatch.setattr(tracer, "PATHS_KEPT", 1)
    dut = _router(journey_limit=0)
    dut.send("p0", [_udp("10.0.1.2", 1), _udp("192.0.2.1", 2), _udp("10.0.0.1", 3), _udp("10.0.1.2", 4)])
    paths = dut.journeys().paths
    assert [packets for _, packets in paths] == [2, 2]
    assert paths[1][0] == "(paths after the first 1 distinct ones)"


def test_frames_nobody_collects_are_kept_up_to_the_limit_then_dropped_and_counted():
    dut = _router(journey_limit=3)
    dut.transmit("p0", [bytes(_udp("10.0.1.2", i)) for i in range(10)])
    assert dut.uncollected_dropped("p1") == 7
    assert [Ether(frame)[IP].id for frame in dut.collect("p1")] == [0, 1, 2]
    dut.transmit("p0", [bytes(_udp("10.0.1.2", i)) for i in range(10, 12)])
    with pytest.raises(ExpectError) as err:
        dut.expect("p1", _udp("10.0.1.2", 99))
    text = str(err.value)
    assert ("\n(7 later frames that left p1 were dropped uncollected: the port already held as many frames "
            "nobody collected as the target keeps; raise --journey-limit to keep them)\n") in text
    assert "(9 more packets after the first 3, summarised by path;" in text
    assert dut.uncollected_dropped("p0") == 0
    dut.reset()
    assert dut.uncollected_dropped("p1") == 0, "a new phase of the test starts with nothing dropped"


def test_journey_limit_comes_from_the_option_and_a_marker_overrides_it(pytester):
    pytester.makepyfile("""
        import pytest

        def test_option(target):
            assert target.kernel.tracer.journey_limit == 7

        @pytest.mark.journey_limit(50_000)
        def test_marker(target):
            assert target.kernel.tracer.journey_limit == 50_000
    """)
    pytester.runpytest("--target=mock", "--journey-limit=7").assert_outcomes(passed=2)
    assert pytester.runpytest("--target=mock", "--journey-limit=-1").ret == pytest.ExitCode.USAGE_ERROR
