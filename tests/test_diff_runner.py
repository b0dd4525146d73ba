"""The differential runner (harness/diff): scenarios as data, shrinking, and a
seeded sample of generated scenarios on the mock and the netns lab."""
from __future__ import annotations

import os
import shutil
from dataclasses import replace

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.cli.diff import render_diff
from harness.cli.trace import Trace
from harness.diff.__main__ import campaign
from harness.diff.explained import explain
from harness.diff.runner import FreshTargets, Result, shrink, smaller
from harness.diff.cases import Outcome
from harness.diff.scenario import Chain, Program, Scenario, restore_text
from harness.diff.state import State, state_lines
from harness.journey import CtEntry, Drop, Hop, Journey, RuleCounter

SCENARIO = Scenario(("sysctl -w net.ipv4.ip_forward=0", "ip route add blackhole 192.0.2.0/24"),
                    (Chain("forward", "filter", "filter", "drop", ("udp dport 53 counter drop", "counter accept")),
                     Chain("postrouting", "nat", "srcnat", "accept", ("counter masquerade",))),
                    "p0", (b"\x01" * 60, b"\x02" * 60))


def test_a_scenario_is_data_that_round_trips_through_json():
    assert Scenario.from_json(SCENARIO.to_json()) == SCENARIO


XT_SCENARIO = replace(SCENARIO, xtables=("-t filter -N u0", "-t filter -A u0 -p udp --dport 53 -j DROP",
                                         "-t nat -A POSTROUTING -j MASQUERADE", "-t filter -A FORWARD -j u0",
                                         "-t filter -P FORWARD DROP"),
                      programs=(Program("p0", "xdp", "xdp_pass", "xdp"), Program("p1", "ingress", "tc_set_mark", "tc"),
                                Program("p1", "egress", "tc_drop_udp", "tc")))


def test_a_scenario_with_iptables_lines_and_programs_round_trips_and_old_cases_still_load():
    assert Scenario.from_json(XT_SCENARIO.to_json()) == XT_SCENARIO
    old = {key: value for key, value in SCENARIO.to_json().items()}
    assert "xtables" not in old and "programs" not in old  # a case without them is written as before
    assert Scenario.from_json(old) == SCENARIO


def test_iptables_lines_are_one_restore_a_block_per_table_user_chains_and_policies_declared_first():
    assert restore_text(XT_SCENARIO.xtables) == (
        "*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
        "*filter\n:FORWARD DROP [0:0]\n:u0 - [0:0]\n-A u0 -p udp --dport 53 -j DROP\n-A FORWARD -j u0\nCOMMIT\n")


def test_programs_attach_after_the_rulesets_a_clsact_qdisc_once_per_port(monkeypatch):
    monkeypatch.setattr("harness.diff.scenario.build", lambda name: f"/objs/{name}.o")
    argvs = [" ".join(command.argv) for command in XT_SCENARIO.setup()]
    assert argvs[2:] == ["iptables-restore", "nft -f -", "ip link set dev p0 xdp obj /objs/xdp_pass.o sec xdp",
                         "tc qdisc add dev p1 clsact", "tc filter add dev p1 ingress bpf da obj /objs/tc_set_mark.o sec tc",
                         "tc filter add dev p1 egress bpf da obj /objs/tc_drop_udp.o sec tc"]


def test_its_setup_is_the_commands_then_one_nft_transaction():
    commands = SCENARIO.setup()
    assert [command.argv for command in commands] == [
        ("sysctl", "-w", "net.ipv4.ip_forward=0"), ("ip", "route", "add", "blackhole", "192.0.2.0/24"),
        ("nft", "-f", "-")]
    assert commands[2].stdin == (
        "table ip t {\n"
        "\tchain c0 {\n\t\ttype filter hook forward priority filter; policy drop;\n"
        "\t\tudp dport 53 counter drop\n\t\tcounter accept\n\t}\n"
        "\tchain c1 {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\tcounter masquerade\n\t}\n}\n")


def test_smaller_scenarios_each_lack_one_part():
    fewer = list(smaller(SCENARIO))
    assert len(fewer) == 2 + 2 + 2 + 3 + 1  # frames, chains, commands, rules, a drop policy made accept
    assert all(candidate != SCENARIO for candidate in fewer)
    assert replace(SCENARIO, frames=SCENARIO.frames[1:]) in fewer
    more = list(smaller(XT_SCENARIO))
    assert len(more) == len(fewer) + 5 + 3  # and an iptables line or a program less
    assert replace(XT_SCENARIO, xtables=XT_SCENARIO.xtables[1:]) in more
    assert replace(XT_SCENARIO, programs=XT_SCENARIO.programs[:2]) in more


def _diverges_on_rule_and_frame(scenario: Scenario) -> Result:
    """A stand-in for a run: it diverges while the scenario has the udp rule and the second frame."""
    rules = [rule for chain in scenario.chains for rule in chain.rules]
    differs = "udp dport 53 counter drop" in rules and b"\x02" * 60 in scenario.frames
    return Result(scenario, {}, {}, int(differs), "")


def test_shrinking_keeps_only_what_the_divergence_needs():
    shrunk = shrink(_diverges_on_rule_and_frame(SCENARIO), _diverges_on_rule_and_frame)
    assert shrunk.scenario == Scenario((), (Chain("forward", "filter", "filter", "accept",
                                                  ("udp dport 53 counter drop",)),), "p0", (b"\x02" * 60,))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                    reason="the netns lab needs root and nft: run as root, apt-get install nftables")
def test_a_seeded_sample_of_generated_scenarios_runs_alike_on_the_mock_and_the_kernel():
    results = []
    with FreshTargets() as targets:
        campaign(4, 12, targets, results.append)
    assert len(results) == 4
    assert [result.text for result in results if result.diverges] == []


def _trace(target: str, journeys, left=None) -> Trace:
    return Trace(target, "p0", [], journeys, left or {"p0": [], "p1": []})


def test_a_nat_the_lab_cannot_see_before_a_drop_is_explained_only_while_frames_and_drops_agree():
    """NAT, then a drop before conntrack confirms the entry: the lab shows neither the
    rewrite nor which packet the drop belongs to (explained.py)."""
    drop = Drop("IP_INHDR", "IP_FORWARD", "ip_forward")
    mock = _trace("mock", [Journey("a", [Hop("NF_PREROUTING", "ip t c0", "ACCEPT", "rule 2"),
                                         Hop("NF_PREROUTING", "nf_nat_packet", "DNAT", "daddr")], drop)])
    dut = _trace("dut", [Journey("a", [Hop("NF_PREROUTING", "ip t c0", "ACCEPT", "rule 2")]), Journey("b", [], drop)])
    assert explain(mock, dut).name == "nat-before-confirm"
    assert explain(mock, _trace("dut", dut.journeys, {"p0": [b"\x00" * 60], "p1": []})) is None
    assert explain(mock, _trace("dut", dut.journeys[:1])) is None  # the drop itself must agree


def _udp_frame(sport: int, ttl: int = 63) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:02:02") / IP(src="10.0.2.1", dst="10.0.2.2", ttl=ttl)
                 / UDP(sport=sport, dport=9) / b"x")


def _masqueraded(target: str, port: int) -> Journey:
    return Journey("a", [Hop("NF_POSTROUTING", "nf_nat_packet", "SNAT", f"saddr 10.0.1.2:53 -> 10.0.2.1:{port}")])


def test_a_nat_port_each_target_drew_from_the_range_is_explained_only_while_all_else_agrees():
    """nf_nat_l4proto_unique_tuple() searches a port range from a random offset (explained.py)."""
    mock = Trace("mock", "p1", [], [_masqueraded("mock", 2004)], {"p2": [_udp_frame(2004)]})
    dut = Trace("dut", "p1", [], [_masqueraded("dut", 2009)], {"p2": [_udp_frame(2009)]})
    assert explain(mock, dut).name == "nat-port-random"
    assert explain(mock, Trace("dut", "p1", [], dut.journeys, {"p2": [_udp_frame(2009, ttl=62)]})) is None
    kept = Journey("a", [Hop("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.1.2:53 -> 10.0.2.1:53")])
    assert explain(Trace("mock", "p1", [], [kept], {"p2": [_udp_frame(53)]}), dut) is None


def test_an_ipv6_scenario_with_listeners_and_an_inet_chain_round_trips_and_sets_the_ipv6_plan_up_first():
    scenario = replace(SCENARIO, chains=(Chain("input", "filter", "filter", "accept", ("ip6 hoplimit 1 counter drop",),
                                               "inet"),), sockets=("tcp6 22",), ipv6=True)
    assert Scenario.from_json(scenario.to_json()) == scenario
    argv = [command.argv for command in scenario.setup()]
    assert argv[1] == ("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0")
    assert ("ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "p0") in argv
    assert scenario.setup()[-1].stdin.startswith("table inet t {\n")
    assert replace(scenario, sockets=()) in list(smaller(scenario))


def test_a_case_recorded_before_counters_and_sockets_loads_as_it_was():
    old = {"commands": [], "chains": [{"hook": "input", "kind": "filter", "priority": "filter", "policy": "drop",
                                       "rules": ["counter"]}], "port": "p0", "frames": ["00"]}
    scenario = Scenario.from_json(old)
    assert (scenario.sockets, scenario.ipv6, scenario.chains[0].family) == ((), False, "ip")
    assert scenario.to_json() == old
    assert Outcome.from_json({"left": {}, "drops": []}).state is None


def test_a_counter_or_an_entry_one_target_lacks_is_a_difference_and_timeouts_are_masked():
    entry = CtEntry("udp", "", ("10.0.0.2", "10.0.1.2", 1, 2), ("10.0.1.2", "10.0.0.2", 2, 1),
                    frozenset({"confirmed"}), 0, 30)
    counter = RuleCounter("ip", "t", "c0", "counter accept", 1, 60)
    same = state_lines(State([counter], [entry]), State([counter], [entry._replace(timeout=29)]), "mock", "dut")
    assert all(line.startswith("  ") for line in same)
    differs = state_lines(State([counter], [entry]), State([counter._replace(packets=2)], []), "mock", "dut")
    assert [line[:2] for line in differs if not line.startswith("    ")] == ["! ", "< "]


def test_an_ipv6_packets_netfilter_hops_are_left_out_against_a_lab_that_traces_ipv4_only():
    """drivers/nftrace.py marks IPv4 packets only: the mock's IPv6 chain hops have no
    counterpart on the lab, so only the drop and the frames compare (and the counters)."""
    drop = Drop("NETFILTER_DROP", "NF_OUTPUT", "nft_do_chain")
    chain = Hop("NF_OUTPUT", "ip6 t c0", "DROP", "policy")
    mock = _trace("mock", [Journey("icmp6_send type 1 code 0: 2001:db8::1 > 2001:db8::2 icmpv6 hlim=64 plen=56",
                                   [chain], drop)])
    dut = _trace("dut", [Journey("ipv6", [], drop)])
    assert render_diff(mock, dut)[1] == 0
    ipv4 = _trace("mock", [Journey("icmp_send type 3: 10.0.0.1 > 10.0.0.2 icmp ttl=64", [chain], drop)])
    assert render_diff(ipv4, _trace("dut", [Journey("ipv4", [Hop("NF_INPUT", "ip t c1", "ACCEPT", "policy")])]))[1] > 0


def test_a_case_of_a_setup_only_the_kernel_refused_records_the_refusal():
    """The kernel refused a command the mock took: no trace of the kernel to record
    (a campaign stopped on a KeyError here), the refusal instead."""
    from harness.diff.cases import case_json
    result = Result(SCENARIO, {"mock": _trace("mock", [])}, {"dut": "<scenario>:2: RTNETLINK answers: No route"}, 1,
                    "dut refused the setup: ...\n")
    case = case_json(result)
    assert case["kernel"] == {"refused": "<scenario>:2: RTNETLINK answers: No route"}
    assert Scenario.from_json(case["scenario"]) == SCENARIO


def test_which_of_two_identical_packets_a_drop_is_on_is_explained_only_while_the_drops_agree():
    """A fragment sent twice: the kernel drops the second copy (DUP_FRAG), the lab
    gives the drop to the first, whose headers are the same (explained.py)."""
    dup = Drop("DUP_FRAG", "IP_DEFRAG", "ip_defrag")
    mock = _trace("mock", [Journey("frag"), Journey("frag", [], dup)])
    dut = _trace("dut", [Journey("frag", [], dup), Journey("frag")])
    assert explain(mock, dut).name == "identical-packets"
    assert explain(mock, _trace("dut", [Journey("frag", [], dup), Journey("other")])) is None
    assert explain(mock, _trace("dut", [Journey("frag"), Journey("frag")])) is None  # the drop itself must agree
