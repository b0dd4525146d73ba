"""The arp family and the netdev egress hook on the mock (netfilter/nf_tables.py,
core.py, ipv4/arp.py, core/dev.py), each test pinned to what nft 1.0.6 and the
6.18 kernel do (errors as the real nft printed them in a scratch namespace)."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.journey import Stage
from harness.mockkernel.target import MockTarget


def test_an_arp_table_takes_input_and_output_chains_and_the_kernel_refuses_forward(refusal):
    t = MockTarget()
    t.sh("nft add table arp t")
    t.sh("nft add chain arp t in { type filter hook input priority 0; }")
    t.sh("nft add chain arp t out { type filter hook output priority 0; }")
    assert refusal(t, "nft add chain arp t f { type filter hook forward priority 0; }").startswith(
        "Error: Could not process rule: Operation not supported")
    assert refusal(t, "nft add chain arp t pre { type filter hook prerouting priority 0; }").startswith(
        "Error: The arp family does not support this hook")


@pytest.mark.parametrize("family, message", [("ip", "conflicting protocols specified: ip vs. arp"),
                                             ("inet", "conflicting protocols specified: inet vs. arp")])
def test_arp_fields_outside_arp_netdev_and_bridge_tables_conflict_with_the_family(refusal, family, message):
    t = MockTarget()
    t.sh(f"nft add table {family} t")
    t.sh(f"nft add chain {family} t c {{ type filter hook input priority 0; }}")
    assert refusal(t, f"nft add rule {family} t c arp htype 1").startswith(f"Error: {message}")


def test_arp_family_lists_ranges_numerically_and_merged_addresses_in_header_order():
    t = MockTarget()
    t.sh("nft add table arp t")
    t.sh("nft add chain arp t c { type filter hook input priority 0; }")
    t.sh("nft add rule arp t c arp operation 1-2")
    t.sh("nft add rule arp t c arp daddr ether fe:ed:00:c0:ff:ee arp saddr ip 192.168.1.1")
    assert t.sh("nft list chain arp t c").splitlines()[3:5] == [
        "\t\tarp operation 1-2",
        "\t\tarp saddr ip 192.168.1.1 arp daddr ether fe:ed:00:c0:ff:ee"]


def test_an_arp_request_dropped_at_nf_arp_in_is_freed_netfilter_drop_before_arp_process():
    t = MockTarget()
    t.sh("ip addr add 10.0.0.1/24 dev p0")
    t.sh("nft add table arp t")
    t.sh("nft add chain arp t c { type filter hook input priority 0; }")
    t.sh("nft add rule arp t c arp operation request drop")
    t.send("p0", Ether(src="02:00:00:00:01:01", dst="ff:ff:ff:ff:ff:ff") /
           ARP(op=1, hwsrc="02:00:00:00:01:01", psrc="10.0.0.9", pdst="10.0.0.1"))
    t.expect_nothing(["p0"])
    [journey] = t.journeys()
    assert (journey.drop.reason, journey.drop.stage) == ("NETFILTER_DROP", Stage.NF_INPUT)
    assert Stage.NEIGH not in [hop.stage for hop in journey.hops]


def test_a_netdev_egress_drop_ends_the_journey_at_nf_egress_before_tc_egress():
    """__dev_queue_xmit() runs nf_hook_egress() before sch_handle_egress()."""
    t = MockTarget()
    t.sh("ip addr add 10.0.0.1/24 dev p0")
    t.sh("ip addr add 10.0.1.1/24 dev p1")
    t.sh("sysctl -w net.ipv4.ip_forward=1")
    t.sh("ip neigh add 10.0.1.2 lladdr 02:00:00:00:02:02 dev p1")
    t.sh("nft add table netdev t")
    t.sh("nft add chain netdev t e { type filter hook egress device p1 priority 0; }")
    t.sh("nft add rule netdev t e udp dport 9 drop")
    t.send("p0", Ether(dst=t.ports[0].mac) / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(dport=9))
    t.expect_nothing(["p1"])
    [journey] = t.journeys()
    assert (journey.drop.reason, journey.drop.stage) == ("NETFILTER_DROP", Stage.NF_EGRESS)
    assert journey.hops[-1].where == "netdev t e"


def test_netdev_rejects_list_in_full_and_take_a_meta_protocol_dependency_as_nft_1_0_6_does():
    """stmt_evaluate_reject_family() gives a netdev `reject with icmp` its
    `meta protocol ip`; stmt_reject_postprocess() prints inet, bridge and
    netdev rejects in full and leaves that dependency out (a tcp reset's
    `meta l4proto 6` stays, as in inet)."""
    t = MockTarget()
    t.sh("nft add table netdev t")
    t.sh("nft add chain netdev t c { type filter hook ingress device p0 priority 0; }")
    for rule in ("reject with icmp port-unreachable", "meta protocol ip6 reject", "reject with icmpx admin-prohibited",
                 "reject", "mark 12345 reject with tcp reset"):
        t.sh(f"nft add rule netdev t c {rule}")
    assert t.sh("nft list chain netdev t c").splitlines()[3:-2] == [
        "\t\treject with icmp port-unreachable", "\t\treject with icmpv6 port-unreachable",
        "\t\treject with icmpx admin-prohibited", "\t\treject",
        "\t\tmeta l4proto tcp meta mark 0x00003039 reject with tcp reset"]
    first = t.kernel.nft.ruleset.tables[0].chains["c"].rules[0].stmts[0]
    assert (first.lhs.key, first.rhs.value) == ("protocol", 0x0800)  # only IPv4 packets get the ICMP error
