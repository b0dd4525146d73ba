"""The line-rate cost model (harness/mockkernel/linerate/cost.py): the default
profile charges the paths of the XDP paper's single-core 64-byte tests (real
journeys of the mock's functional path, with the programs from programs/ and
the rules as the paper's DUT had them) what the paper measured: 1000 / Mpps ns
per packet. The expected figures are the paper's, written out."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.journey import Drop, Hop, Journey, Stage
from harness.mockkernel.linerate.anchors import ANCHORS, ROUTED, base_dut, frame
from harness.mockkernel.linerate.cost import COST_NAMES, COSTS, CostModel, CostProfileError, path_counts
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL
from harness.mockkernel.net import RT_TABLE_MAIN, FibRoute
from harness.mockkernel.target import MockTarget
from harness.target import PORTS
from harness.traffic import Profile, Stream, Vary

# the routes the paper's full-table test loaded (a full BGP table in 2018)
FULL_BGP_TABLE = 752_138
BGP_HOSTS = 0x64400000  # 100.64.0.0: host routes from here stand for it
# (the path's last hop, the paper's Mpps)
PAPER = {
    "xdp_drop": ((Stage.XDP, "DROP"), 24.0),
    "xdp_tx": ((Stage.NIC_TX, "XMIT"), 16.6),
    "xdp_redirect": ((Stage.NIC_TX, "XMIT"), 8.55),
    "iptables_raw_drop": ((Stage.NF_PREROUTING, "DROP"), 4.8),
    # the paper's 4.5 is 4.8 Mpps less its 13.3 ns: 1000 / (208.333 + 13.3)
    "xdp_pass_raw_drop": ((Stage.NF_PREROUTING, "DROP"), 4.512),
    "filter_drop": ((Stage.NF_INPUT, "DROP"), 3.32),
    "conntrack": ((Stage.NF_INPUT, "DROP"), 1.8),
    "routing_1route": ((Stage.NIC_TX, "XMIT"), 1.74),
}  # routing_fulltable: below, the table's size without loading it


def dut() -> MockTarget:
    target = MockTarget()
    base_dut(target)
    return target


def journey_of(target: MockTarget, dst: str = ROUTED) -> Journey:
    """The journey of the second of two identical 64-byte frames (the first may set up state)."""
    assert len(frame(dst)) == 60  # 64 bytes on the wire with the FCS
    target.send("p0", [frame(dst), frame(dst)])
    return target.journeys()[-1]


def mpps(target: MockTarget, journey: Journey) -> float:
    return 1000 / CostModel.default().packet_ns(journey, target.kernel)


@pytest.mark.parametrize("anchor", [a for a in ANCHORS if a.name in PAPER], ids=lambda anchor: anchor.name)
def test_the_default_profile_charges_each_paper_path_what_the_paper_measured(anchor, bpf_objects):
    (last_stage, last_verdict), paper_mpps = PAPER[anchor.name]
    target = dut()
    anchor.configure(target, bpf_objects)
    journey = journey_of(target, anchor.dst)
    assert (journey.hops[-1].stage, journey.hops[-1].verdict) == (last_stage, last_verdict), journey.render()
    assert mpps(target, journey) == pytest.approx(paper_mpps, rel=1e-4)


def test_a_full_bgp_table_costs_the_fib_lookup_what_the_paper_measured():
    target = dut()
    journey = journey_of(target)
    # the table's size is what the cost reads: distinct host routes out of the forwarding port
    main, oif = target.kernel.tables[RT_TABLE_MAIN], target.kernel.dev_by_name("p1").ifindex
    for index in range(FULL_BGP_TABLE):
        main.insert(FibRoute(RT_TABLE_MAIN, BGP_HOSTS + index, 32, oif=oif), NLM_F_CREATE | NLM_F_EXCL)
    assert mpps(target, journey) == pytest.approx(1.37, rel=1e-4)


def test_conntrack_charges_the_entry_allocation_only_to_packets_that_get_one():
    target = dut()
    target.sh("iptables -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT")
    target.send("p0", [frame(ROUTED), frame(ROUTED)])
    first, second = target.journeys()
    assert path_counts(first, target.kernel)["conntrack_new"] == 1
    assert path_counts(first, target.kernel)["conntrack_confirm"] == 1
    assert "conntrack_new" not in path_counts(second, target.kernel)
    assert path_counts(second, target.kernel)["conntrack_in"] == 1


def test_a_chain_pays_each_rule_the_kernel_evaluates_up_to_the_verdict():
    target = dut()
    target.sh("iptables -A FORWARD -p tcp -j DROP")
    target.sh("iptables -A FORWARD -p udp --dport 7 -j DROP")
    target.sh("iptables -A FORWARD -p udp --dport 9 -j DROP")
    target.sh("iptables -A FORWARD -p udp --dport 10 -j DROP")
    assert path_counts(journey_of(target), target.kernel)["nf_rule"] == 3
    target.sh("iptables -F FORWARD")
    target.sh("iptables -A FORWARD -p tcp -j DROP")
    target.sh("iptables -A FORWARD -p udp --dport 7 -j DROP")
    accepted_by_policy = journey_of(target)
    assert accepted_by_policy.hops[-1].stage == Stage.NIC_TX
    assert path_counts(accepted_by_policy, target.kernel)["nf_rule"] == 2


def test_an_icmp_error_the_packet_caused_is_charged_with_it():
    target = dut()
    target.sh(f"ip neigh replace 10.0.0.2 lladdr {PORTS[0].peer_mac} dev p0 nud permanent")
    frame = Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="198.18.0.1", ttl=1) / \
        UDP(sport=1024, dport=9)
    target.send("p0", frame)
    journey, = target.journeys()
    assert journey.children, journey.render()
    assert path_counts(journey, target.kernel)["dev_xmit"] == 1  # the time exceeded, out of p0


def test_a_frame_the_ring_missed_costs_no_cpu():
    missed = Journey("frame", [Hop(Stage.NIC_RX, "p0", "MISSED")], Drop("RX_RING_FULL", Stage.NIC_RX))
    assert CostModel.default().packet_ns(missed) == 0


def test_a_profile_saved_loads_with_the_same_costs(tmp_path):
    model = CostModel({name: float(i) for i, name in enumerate(COST_NAMES)}, "my dut")
    model.save(tmp_path / "profile.json")
    loaded = CostModel.load(tmp_path / "profile.json")
    assert (loaded.name, loaded.costs) == ("my dut", {name: float(i) for i, name in enumerate(COST_NAMES)})


def test_a_profile_missing_a_cost_is_refused_naming_it(tmp_path):
    costs = {name: 1.0 for name in COST_NAMES if name != "fib_lookup"} | {"fib_lookups": 2.0}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"format": "packet-journey cost profile 1", "costs_ns": costs}))
    with pytest.raises(CostProfileError, match=f"cost profile {path}: costs missing: fib_lookup; "
                                               "unknown costs: fib_lookups"):
        CostModel.load(path)


def test_a_file_that_is_not_a_profile_is_refused(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": []}))
    with pytest.raises(CostProfileError, match="not a cost profile"):
        CostModel.load(path)


@pytest.mark.parametrize("anchor", [a for a in ANCHORS if a.name in PAPER], ids=lambda anchor: anchor.name)
def test_the_engine_runs_each_paper_path_at_the_paper_s_rate_on_one_cpu(anchor, bpf_objects):
    """p0 at 100 Gb/s offered line rate (148.8 Mpps) for 50 ms: one RX queue,
    one CPU, which handles all it can; the ring misses the rest."""
    _, paper_mpps = PAPER[anchor.name]
    target = dut()
    target.sh("ethtool -s p0 speed 100000 duplex full autoneg off")
    target.sh("ethtool -s p1 speed 100000 duplex full autoneg off")
    anchor.configure(target, bpf_objects)
    result = target.traffic(Profile((Stream.of("p0", frame(anchor.dst)),)), duration=0.05)
    offered = result.streams[0].opackets
    missed = sum(loss.packets for loss in result.losses if loss.stage == Stage.NIC_RX)
    assert offered == pytest.approx(148.8e6 * 0.05, rel=1e-3)
    # the ring's 256 packets, drained after the run, add up to 0.3%
    assert (offered - missed) / result.duration / 1e6 == pytest.approx(paper_mpps, rel=0.005)


def test_the_engine_charges_the_target_s_profile(bpf_objects):
    """XDP_DROP with the program costing 41.667 ns more: 83.333 ns a packet, 12 Mpps."""
    slower = CostModel.default().costs | {"xdp_prog": 13.3 + 41.667}
    target = MockTarget(cost=CostModel(slower))
    base_dut(target)
    target.sh("ethtool -s p0 speed 100000 duplex full autoneg off")
    target.sh(f"ip link set dev p0 xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    result = target.traffic(Profile((Stream.of("p0", frame(ROUTED)),)), duration=0.05)
    handled = result.streams[0].opackets - sum(loss.packets for loss in result.losses if loss.stage == Stage.NIC_RX)
    assert handled / result.duration / 1e6 == pytest.approx(12.0, rel=0.005)


@pytest.mark.parametrize("anchor", [a for a in ANCHORS if a.name in ("xdp_drop", "iptables_raw_drop")],
                         ids=lambda anchor: anchor.name)
def test_two_queues_on_two_cpus_handle_twice_what_one_does(anchor, bpf_objects):
    """The paper's drop figures scale linearly with cores: 16 flows spread by
    RSS over p0's two queues, queue i on CPU i."""
    _, paper_mpps = PAPER[anchor.name]
    target = dut()
    target.sh("ethtool -s p0 speed 100000 duplex full autoneg off")
    target.sh("ethtool -L p0 combined 2")
    assert target.kernel.ncpus == 2
    anchor.configure(target, bpf_objects)
    stream = Stream.of("p0", frame(anchor.dst), vary=(Vary("udp.sport", 16),))
    result = target.traffic(Profile((stream,)), duration=0.05)
    handled = result.streams[0].opackets - sum(loss.packets for loss in result.losses if loss.stage == Stage.NIC_RX)
    assert handled / result.duration / 1e6 == pytest.approx(2 * paper_mpps, rel=0.005)


def test_every_cost_names_the_kernel_functions_it_stands_for_and_its_derivation():
    undocumented = [cost.name for cost in COSTS if "()" not in cost.meaning or not cost.derivation]
    assert not undocumented
