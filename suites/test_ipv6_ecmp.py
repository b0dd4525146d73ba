"""IPv6 ECMP (net/ipv6/route.c, ip6_fib.c): multipath routes as the kernel
keeps and iproute2 lists them, and each flow's next hop as the kernel's
hash picks it (rt6_multipath_hash() -> fib6_select_path()).

The per-flow choices below were recorded on the real kernel (6.18, netns
lab) with net.ipv4.fib_multipath_hash_seed=0x5eed: SipHash-2-4 of the flow
keys under that seed, compared with each nexthop's share of 2^31."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6

from harness.target import CommandError
from harness.testing import drops

FAR = "2001:db8:99::7"
SEED = "sysctl -w net.ipv4.fib_multipath_hash_seed=0x5eed"
# the next hop (h1 or h2) of flow i of 16, as the kernel chose it
BY_FLOW_LABEL = [1, 1, 1, 1, 1, 1, 2, 1, 1, 2, 2, 1, 1, 2, 1, 2]  # policy 0, flow label i
BY_FLOW_LABEL_WEIGHTED = [1, 2, 1, 1, 1, 1, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2]  # policy 0, weights 1 and 3
BY_SOURCE_PORT = [2, 1, 1, 2, 2, 2, 2, 2, 1, 1, 2, 2, 1, 2, 1, 2]  # policy 1, source port 1000 + i


def _refusal(target, command: str) -> tuple[str, int]:
    with pytest.raises(CommandError) as refused:
        target.sh(command)
    return str(refused.value).split("failed: ", 1)[1].strip(), refused.value.returncode


def _multipath(target, router6, weights=(1, 1)) -> None:
    h1, h2 = router6[1], router6[2]
    target.sh(SEED)
    target.sh(f"ip -6 route add 2001:db8:99::/64 nexthop via {h1.ip6} weight {weights[0]} "
              f"nexthop via {h2.ip6} weight {weights[1]}")


def _forward(target, router6, chosen: list[int], flow_label=lambda i: 0, sport=lambda i: 1000) -> None:
    h0 = router6[0]
    for i, index in enumerate(chosen):
        hop = router6[index]
        payload = UDP(sport=sport(i), dport=2000) / b"flow"
        target.send(h0.port, h0.to_dut6(dst=FAR, fl=flow_label(i), hlim=64) / payload)
        target.expect(hop.port, hop.from_dut6(src=h0.ip6, dst=FAR, fl=flow_label(i), hlim=63) / payload)
    target.expect_nothing()
    assert drops(target) == []


def test_policy_0_spreads_flows_by_flow_label_as_the_kernel_does(target, router6):
    _multipath(target, router6)
    _forward(target, router6, BY_FLOW_LABEL, flow_label=lambda i: i)


def test_policy_0_ignores_the_ports(target, router6):
    """ip6_multipath_l3_keys(): addresses, flow label and next header only."""
    _multipath(target, router6)
    _forward(target, router6, [BY_FLOW_LABEL[0]] * 16, sport=lambda i: 1000 + i)


def test_weights_give_each_nexthop_its_share_of_the_hash(target, router6):
    """rt6_upper_bound_set(): weight 1 of 4 is the hashes up to 2^31/4 - 1."""
    _multipath(target, router6, weights=(1, 3))
    _forward(target, router6, BY_FLOW_LABEL_WEIGHTED, flow_label=lambda i: i)


def test_policy_1_spreads_flows_by_ports_and_ignores_the_flow_label(target, router6):
    _multipath(target, router6)
    target.sh("sysctl -w net.ipv6.fib_multipath_hash_policy=1")
    _forward(target, router6, BY_SOURCE_PORT, sport=lambda i: 1000 + i)
    _forward(target, router6, [BY_SOURCE_PORT[0]] * 16, flow_label=lambda i: i)


def test_an_icmpv6_error_takes_the_path_of_the_flow_it_quotes(target, router6):
    """ip6_multipath_l3_keys() hashes the quoted header of an ICMPv6 error,
    and the hash orders the addresses (__flow_hash_consistentify()): the
    error about the reply of flow i goes the way flow i went."""
    h0 = router6[0]
    _multipath(target, router6)
    for i, index in enumerate(BY_FLOW_LABEL[:8]):
        hop = router6[index]
        quoted = IPv6(src=FAR, dst=h0.ip6, fl=i, hlim=60) / UDP(sport=2000, dport=1000) / b"flow"
        error = ICMPv6DestUnreach(code=4) / quoted
        target.send(h0.port, h0.to_dut6(dst=FAR, hlim=64) / error)
        target.expect(hop.port, hop.from_dut6(src=h0.ip6, dst=FAR, hlim=63) / error)
    target.expect_nothing()


def test_multipath_routes_list_as_iproute2_prints_them(target, router6):
    h1, h2 = router6[1], router6[2]
    p1, p2 = h1.port.name, h2.port.name
    target.sh(f"ip -6 route add 2001:db8:99::/64 proto static nexthop via {h1.ip6} nexthop via {h2.ip6} weight 3")
    # fib6_add_rt2node(): appending a gateway route of the same metric makes siblings
    target.sh(f"ip -6 route add 2001:db8:98::/64 via {h1.ip6} metric 5")
    target.sh(f"ip -6 route append 2001:db8:98::/64 via {h2.ip6} metric 5")
    # a device route never joins one
    target.sh(f"ip -6 route add 2001:db8:96::/64 dev {p1}")
    target.sh(f"ip -6 route append 2001:db8:96::/64 via {h2.ip6}")
    assert target.sh("ip -6 route show 2001:db8:99::/64") == (
        "2001:db8:99::/64 proto static metric 1024 pref medium\n"
        f"\tnexthop via {h1.ip6} dev {p1} weight 1 \n"
        f"\tnexthop via {h2.ip6} dev {p2} weight 3 \n")
    assert target.sh("ip -d -6 route show 2001:db8:98::/64") == (
        "unicast 2001:db8:98::/64 proto boot scope global metric 5 pref medium\n"
        f"\tnexthop via {h1.ip6} dev {p1} weight 1 \n"
        f"\tnexthop via {h2.ip6} dev {p2} weight 1 \n")
    assert target.sh("ip -j -6 route show 2001:db8:98::/64") == (
        '[{"dst":"2001:db8:98::/64","metric":5,"flags":[],"pref":"medium","nexthops":['
        f'{{"gateway":"{h1.ip6}","dev":"{p1}","weight":1,"flags":[]}},'
        f'{{"gateway":"{h2.ip6}","dev":"{p2}","weight":1,"flags":[]}}]}}]\n')
    assert target.sh("ip -6 route show 2001:db8:96::/64") == (
        f"2001:db8:96::/64 dev {p1} metric 1024 pref medium\n"
        f"2001:db8:96::/64 via {h2.ip6} dev {p2} metric 1024 pref medium\n")
    # a dev selector needs RTA_OIF, which a multipath route has not
    assert target.sh(f"ip -6 route show dev {p1} 2001:db8:96::/64") == "2001:db8:96::/64 metric 1024 pref medium\n"
    assert target.sh(f"ip -6 route show dev {p1} 2001:db8:98::/64") == ""
    # a gateway deletes that nexthop, none the whole group
    target.sh(f"ip -6 route del 2001:db8:98::/64 via {h2.ip6} metric 5")
    assert target.sh("ip -6 route show 2001:db8:98::/64") == \
        f"2001:db8:98::/64 via {h1.ip6} dev {p1} metric 5 pref medium\n"
    target.sh("ip -6 route del 2001:db8:99::/64")
    assert target.sh("ip -6 route show 2001:db8:99::/64") == ""


def test_replacing_a_multipath_route_replaces_the_whole_group(target, router6):
    h1, h2 = router6[1], router6[2]
    p1, p2 = h1.port.name, h2.port.name
    target.sh(f"ip -6 route add 2001:db8:91::/64 via {h1.ip6}")
    # prepend too adds the sibling after the group (fib6_add_rt2node() inserts after equal metrics)
    target.sh(f"ip -6 route prepend 2001:db8:91::/64 via {h2.ip6}")
    target.sh(f"ip -6 route replace 2001:db8:91::/64 nexthop via {h2.ip6} nexthop via {h1.ip6} weight 5")
    assert target.sh("ip -6 route show 2001:db8:91::/64") == (
        "2001:db8:91::/64 metric 1024 pref medium\n"
        f"\tnexthop via {h2.ip6} dev {p2} weight 1 \n"
        f"\tnexthop via {h1.ip6} dev {p1} weight 5 \n")
    target.sh(f"ip -6 route replace 2001:db8:91::/64 via {h1.ip6}")
    assert target.sh("ip -6 route show 2001:db8:91::/64") == \
        f"2001:db8:91::/64 via {h1.ip6} dev {p1} metric 1024 pref medium\n"


def test_multipath_requests_fail_as_iproute2_and_the_kernel_refuse_them(target, router6):
    h1, h2 = router6[1], router6[2]
    p1, p2 = h1.port.name, h2.port.name
    assert _refusal(target, f"ip -6 route add 2001:db8:94::/64 nexthop via {h1.ip6} weight 0") == \
        ('Error: argument "0" is wrong: "weight" is invalid', 255)
    assert _refusal(target, f"ip -6 route add 2001:db8:94::/64 nexthop via {h1.ip6} weight 257") == \
        ('Error: argument "257" is wrong: "weight" is invalid', 255)
    assert _refusal(target, f"ip -6 route add 2001:db8:94::/64 nexthop via {h1.ip6} nexthop via {h1.ip6}") == \
        ("RTNETLINK answers: File exists", 2)
    assert _refusal(target, f"ip -6 route add 2001:db8:92::/64 nexthop dev {p1} nexthop dev {p2}") == \
        ("Error: Device only routes can not be added for IPv6 using the multipath API.", 2)
    # add has NLM_F_EXCL: an equal-metric route is EEXIST even with another gateway
    target.sh(f"ip -6 route add 2001:db8:97::/64 via {h1.ip6}")
    assert _refusal(target, f"ip -6 route add 2001:db8:97::/64 via {h2.ip6}") == \
        ("RTNETLINK answers: File exists", 2)
    assert target.sh("ip -6 route show 2001:db8:94::/64") == ""


def test_ip_6_route_get_names_the_nexthop_the_flow_hashes_to(target, router6):
    """inet6_rtm_getroute() without a packet hashes the flow's fields: the
    source (:: without `from`), the destination, no flow label nor protocol."""
    h0, h1, h2 = router6
    _multipath(target, router6)
    got = [target.sh(f"ip -6 route get 2001:db8:99::{i} from {h0.ip6} iif {h0.port.name}") for i in range(1, 5)]
    hops = [h1 if f"via {h1.ip6} " in line else h2 for line in got]
    # recorded on the kernel: 2001:db8:99::1..4 from 2001:db8::2
    assert [h.port.index for h in hops] == [1, 1, 1, 2]
    assert got[3] == f"2001:db8:99::4 from {h0.ip6} via {h2.ip6} dev {h2.port.name} metric 1024 " \
                     f"iif {h0.port.name} pref medium\n"
