"""NAT in the wrong place: the classic mistakes, failing the way Linux fails.

SNAT belongs in POSTROUTING (or INPUT), DNAT in PREROUTING (or OUTPUT); nat
rules bind a connection once, at its first packet; FORWARD sees the packet
after DNAT. Each test makes one of the mistakes operators make and shows what
Linux does about it: refuses the rule, drops the packet, or lets traffic
through untranslated.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.target import CommandError
from harness.testing import drops, socket_datagram_mask

pytestmark = pytest.mark.requires("nftables")

NAT_CHAINS = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
    }
}
"""


@pytest.mark.parametrize("rule", [
    "prerouting snat to 10.0.1.1",
    "prerouting masquerade",
    "postrouting dnat to 10.0.1.2",
])
def test_nft_nat_in_the_wrong_chain_is_refused_and_the_ruleset_is_left_as_it_was(target, rule):
    """nft_nat_validate() allows snat and masquerade only at POSTROUTING and
    INPUT, dnat and redirect only at PREROUTING and OUTPUT: -EOPNOTSUPP."""
    target.sh("nft -f -", stdin=NAT_CHAINS)
    before = target.sh("nft list ruleset")
    with pytest.raises(CommandError) as refused:
        target.sh(f"nft add rule ip nat {rule}")
    assert "Error: Could not process rule: Operation not supported" in str(refused.value)
    assert refused.value.returncode == 1
    assert target.sh("nft list ruleset") == before


@pytest.mark.parametrize("chain, target_args", [
    ("PREROUTING", "SNAT --to-source 10.0.1.1"),
    ("POSTROUTING", "DNAT --to-destination 10.0.1.2"),
])
def test_iptables_nat_in_the_wrong_chain_is_refused_and_the_ruleset_is_left_as_it_was(target, chain, target_args):
    """The xt SNAT/DNAT targets check their hooks when iptables-nft adds the
    rule: -EINVAL, iptables' exit status 4."""
    target.sh("iptables -t nat -A OUTPUT -p udp --dport 9 -j ACCEPT")
    before = target.sh("nft list ruleset")
    with pytest.raises(CommandError) as refused:
        target.sh(f"iptables -t nat -A {chain} -j {target_args}")
    assert f"RULE_APPEND failed (Invalid argument): rule in chain {chain}" in str(refused.value)
    assert refused.value.returncode == 4
    assert target.sh("nft list ruleset") == before


FORWARD_RULE_ON_THE_PUBLIC_PORT = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 8080 dnat to 10.0.1.2:80
    }
}
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        udp dport 8080 counter accept
    }
}
"""


def send_to_the_public_port(target, router) -> None:
    h0 = router[0]
    target.sh("nft -f -", stdin=FORWARD_RULE_ON_THE_PUBLIC_PORT)
    target.send(h0.port, h0.to_dut(dst=h0.dut_ip, id=81) / UDP(sport=5100, dport=8080) / b"in?")


def test_a_forward_rule_on_the_pre_dnat_port_drops_the_port_forward(target, router):
    """FORWARD runs after PREROUTING's DNAT: it sees port 80, so a rule written
    for the public port 8080 never matches and the policy drops the packet."""
    send_to_the_public_port(target, router)
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    assert [(c.chain, c.packets) for c in target.counters() if "8080" in c.rule and c.table == "filter"] == \
        [("forward", 0)]


@pytest.mark.requires("nftrace")
def test_the_port_forward_s_journey_ends_at_the_forward_chain_s_policy(target, router):
    send_to_the_public_port(target, router)
    target.expect_nothing()
    forward = [hop for journey in target.journeys() for hop in journey.hops if hop.stage == "NF_FORWARD"]
    assert [(hop.where, hop.verdict, hop.summary) for hop in forward] == [("ip filter forward", "DROP", "policy")]


@pytest.mark.requires("sockets")
def test_prerouting_dnat_does_not_catch_the_dut_s_own_connections(target, hosts):
    """A port forward written only in PREROUTING: the DUT's own datagram to its
    public address never crosses PREROUTING before routing (it is routed in
    the socket layer, and its connection got a null DNAT binding at OUTPUT),
    so it stays local and finds no socket on port 8080."""
    h0, h1 = hosts[0], hosts[1]
    target.sh("nft -f -", stdin="""
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 8080 counter dnat to 10.0.1.2:80
    }
}
table ip raw {
    chain output {
        type filter hook output priority raw; policy accept;
        udp dport 8080 ct state new
    }
}
""")
    sock = target.socket("udp", (h0.dut_ip, 4500))
    sock.sendto(b"self", (h0.dut_ip, 8080))
    target.expect_nothing([h1.port])
    assert [(d.reason, d.stage) for d in target.drops()] == [("NO_SOCKET", "L4")]
    assert [c.packets for c in target.counters() if "dnat" in c.rule] == [0]


@pytest.mark.requires("conntrack")
def test_a_masquerade_rule_added_later_does_not_translate_an_established_flow(target, router):
    """nat chains bind a connection at its first packet: a flow that was
    already established keeps leaving with its private source until its
    conntrack entry is deleted; new flows are masqueraded at once."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related,new accept
    }
}
""")
    flow = UDP(sport=7100, dport=53)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=91) / flow / b"q1")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=91, ttl=63) / flow / b"q1")
    target.send(h1.port, h1.to_dut(dst=h0.ip, id=92) / UDP(sport=53, dport=7100) / b"a1")
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=92, ttl=63) / UDP(sport=53, dport=7100) / b"a1")

    target.sh("nft -f -", stdin="""
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
""")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=93) / flow / b"q2")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=93, ttl=63) / flow / b"q2")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=94) / UDP(sport=7101, dport=53) / b"new")
    target.expect(h1.port, h1.from_dut(src=h1.dut_ip, dst=h1.ip, id=94, ttl=63) / UDP(sport=7101, dport=53) / b"new")

    target.sh("conntrack -D -p udp --orig-port-src 7100")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=95) / flow / b"q3")
    target.expect(h1.port, h1.from_dut(src=h1.dut_ip, dst=h1.ip, id=95, ttl=63) / flow / b"q3")
    masqueraded = [e for e in target.conntrack() if e.original[2] == 7100]
    assert [(e.original, e.reply) for e in masqueraded] == [((h0.ip, h1.ip, 7100, 53), (h1.ip, h1.dut_ip, 53, 7100))]


MASQUERADE_ON_P1 = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


@pytest.mark.parametrize("command, stdin", [
    ("nft -f -", MASQUERADE_ON_P1),
    ("iptables -t nat -A POSTROUTING -o p1 -j MASQUERADE", None),
], ids=["nft", "iptables"])
def test_masquerade_drops_a_packet_when_the_dut_has_no_global_address_to_give_it(target, router, command, stdin):
    """nf_nat_masquerade_ipv4() asks inet_select_addr() for a universe-scope
    source on the egress device, then on any other device; with every address
    link-scoped there is none, so it returns NF_DROP (logging "p1 ate my IP
    address"). nft_masq and iptables-nft's xt MASQUERADE both hand that
    verdict to nft_do_chain(), which frees the packet there: NETFILTER_DROP."""
    h0, h1 = router[0], router[1]
    for host in router:
        target.sh(f"ip addr del {host.dut_ip}/24 dev {host.port.name}")
        target.sh(f"ip addr add {host.dut_ip}/24 dev {host.port.name} scope link")
    target.sh(command, stdin=stdin)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=96) / UDP(sport=7200, dport=53) / b"q")
    target.expect_nothing()
    assert drops(target) == [("NETFILTER_DROP", "NF_POSTROUTING", "nft_do_chain")]


def test_masquerade_out_of_a_port_without_an_address_borrows_another_port_s(target, router):
    """inet_select_addr() falls back to the first universe-scope address of any
    device (lo's 127.0.0.1 is host-scoped): p0's, the first port. Removing
    p1's last address also flushed its neighbours (fib_disable_ip())."""
    h0, h1 = router[0], router[1]
    target.sh(f"ip addr del {h1.dut_ip}/24 dev {h1.port.name}")
    target.sh(f"ip route add 10.0.1.0/24 dev {h1.port.name}")
    target.sh(f"ip neigh replace {h1.ip} lladdr {h1.mac} dev {h1.port.name} nud permanent")
    target.sh("nft -f -", stdin=MASQUERADE_ON_P1)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=97) / UDP(sport=7300, dport=53) / b"q")
    target.expect(h1.port, h1.from_dut(src=h0.dut_ip, dst=h1.ip, id=97, ttl=63) / UDP(sport=7300, dport=53) / b"q")
    assert drops(target) == []


@pytest.mark.requires("sockets", "conntrack")
def test_masquerade_lets_a_datagram_from_0_0_0_0_leave_as_it_is(target, hosts):
    """A DUT with no address at all still sends: the route gives its datagram
    the source 0.0.0.0. nf_nat_masquerade_ipv4() accepts such a connection
    unbound ("locally generated packet that is probably not supposed to be
    masqueraded") before it looks for an address, so where a forwarded packet
    is dropped, this one leaves unchanged."""
    h1 = hosts[1]
    for host in hosts:
        target.sh(f"ip addr del {host.dut_ip}/24 dev {host.port.name}")
    target.sh(f"ip route add 10.0.1.0/24 dev {h1.port.name}")
    target.sh(f"ip neigh replace {h1.ip} lladdr {h1.mac} dev {h1.port.name} nud permanent")
    target.sh("nft -f -", stdin=MASQUERADE_ON_P1)
    sock = target.socket("udp", ("0.0.0.0", 4600))
    sock.sendto(b"who", (h1.ip, 53))
    expected = h1.from_dut(src="0.0.0.0", dst=h1.ip, ttl=64, flags="DF") / UDP(sport=4600, dport=53) / b"who"
    target.expect(h1.port, socket_datagram_mask(expected))
    assert drops(target) == []
    assert [(e.original, e.reply) for e in target.conntrack()] == \
        [(("0.0.0.0", h1.ip, 4600, 53), (h1.ip, "0.0.0.0", 53, 4600))]
