"""Netfilter journeys, rule counters and conntrack entries of the real kernel on the
netns lab (nftrace.py, nfnetlink.py), and what the kernel shows through them.

Tests of the real kernel need root and nft (drops also bpftrace); without them they
skip saying so. Parsing and journey building are tested everywhere.
"""
from __future__ import annotations

import json
import os
import shutil
import textwrap

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.drivers.dut import NetnsTarget
from harness.drivers.nftrace import (
    NFT_TRACETYPE_POLICY,
    NFT_TRACETYPE_RULE,
    TRACE_TABLE,
    Chain,
    Ipv4Header,
    Rule,
    TraceEvent,
    build_journeys,
    hide_trace_table,
    parse_ruleset,
    rule_counters,
    rule_text,
)
from harness.journey import Drop, Hop, RuleCounter
from harness.target import PORTS

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "nft")),
    reason="nftrace on the netns lab needs root, iproute2, ethtool, procps and nftables")
needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="drop reasons need bpftrace: apt-get install bpftrace")


# the lab: h0 10.0.0.2 -- p0 10.0.0.1 | DUT | p1 10.0.1.1 -- h1 10.0.1.2

def _to_dut(port: int, dst: str, ident: int):
    return Ether(src=PORTS[port].peer_mac, dst=PORTS[port].mac) / IP(src=f"10.0.{port}.2", dst=dst, id=ident)


@pytest.fixture
def router():
    target = NetnsTarget()
    try:
        for port in PORTS:
            target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
            target.sh(f"ip neigh replace 10.0.{port.index}.2 lladdr {port.peer_mac} dev {port.name} nud permanent")
        target.sh("sysctl -w net.ipv4.ip_forward=1")
        yield target
    finally:
        target.close()


def _hops(journey) -> list[tuple[str, str, str, str]]:
    return [tuple(hop) for hop in journey.hops]


# the four journeys the mock must match -----------------------------------------

@needs_lab
def test_a_forwarded_packet_shows_the_forward_chain_and_the_rule_that_accepted_it(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip filter {
            chain forward {
                type filter hook forward priority filter; policy drop;
                ip daddr 10.0.1.2 udp dport 53 accept
            }
        }
    """))
    router.send("p0", _to_dut(0, "10.0.1.2", 11) / UDP(sport=1000, dport=53) / b"q")
    router.expect("p1", Ether(src=PORTS[1].mac, dst=PORTS[1].peer_mac) /
                  IP(src="10.0.0.2", dst="10.0.1.2", id=11, ttl=63) / UDP(sport=1000, dport=53) / b"q")
    [journey] = router.journeys()
    assert str(journey.packet) == "10.0.0.2 > 10.0.1.2 udp id=11 ttl=64 len=29"
    assert journey.hops == [Hop("NF_FORWARD", "ip filter forward", "ACCEPT",
                                "rule 2: ip daddr 10.0.1.2 udp dport 53 accept")]
    assert journey.drop is None


PORT_FORWARD = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 8080 dnat to 10.0.1.2:80
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
    }
}
table ip filter {
    chain to_server {
        udp dport 80 counter accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ip daddr 10.0.1.2 jump to_server
    }
}
"""


@needs_lab
def test_dnat_shows_in_prerouting_and_nat_chains_see_only_the_first_packet_of_the_flow(router):
    router.sh("nft -f -", stdin=PORT_FORWARD)
    for ident in (21, 22):
        router.send("p0", _to_dut(0, "10.0.0.1", ident) / UDP(sport=5000, dport=8080) / b"fwd")
        router.collect("p1")
    router.send("p1", _to_dut(1, "10.0.0.2", 23) / UDP(sport=80, dport=5000) / b"reply")
    reply = Ether(router.frame_left("p0", "the reply, un-DNATed"))
    assert (reply[IP].src, reply[UDP].sport) == ("10.0.0.1", 8080)
    first, second, answer = router.journeys()
    dnat = Hop("NF_PREROUTING", "nf_nat_packet", "DNAT", "daddr 10.0.0.1:8080 -> 10.0.1.2:80")
    # handles count per table, chains first: to_server 1, forward 2, then the rules
    through = [Hop("NF_FORWARD", "ip filter forward", "JUMP", "rule 5: ip daddr 10.0.1.2 jump to_server"),
               Hop("NF_FORWARD", "ip filter forward", "ACCEPT", "chain to_server rule 3: udp dport 80 counter accept")]
    assert first.hops == [
        Hop("NF_PREROUTING", "ip nat prerouting", "ACCEPT", "rule 3: udp dport 8080 dnat to 10.0.1.2:80"),
        dnat, *through,
        Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT", "policy"),
    ]
    # the flow's NAT is set up: its second packet is rewritten from the conntrack
    # entry (UDP is still ct state new: no reply yet), no nat chain runs
    assert second.hops == [dnat, *through]
    # the reply is un-DNATed in POSTROUTING after its last chain: seen on the wire
    assert answer.hops == [
        Hop("NF_FORWARD", "ip filter forward", "ACCEPT", "rule 4: ct state established,related accept"),
        Hop("NF_POSTROUTING", "nf_nat_packet", "UN-DNAT", "saddr 10.0.1.2:80 -> 10.0.0.1:8080")]


@needs_lab
@needs_bpftrace
def test_a_packet_dropped_by_an_input_rule_carries_its_netfilter_drop(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip filter {
            chain input {
                type filter hook input priority filter; policy accept;
                udp dport 7 counter drop
            }
        }
    """))
    router.send("p0", _to_dut(0, "10.0.0.1", 31) / UDP(sport=1000, dport=7) / b"echo?")
    [journey] = router.journeys()
    assert journey.hops == [Hop("NF_INPUT", "ip filter input", "DROP", "rule 2: udp dport 7 counter drop")]
    assert journey.drop == Drop("NETFILTER_DROP", "NF_INPUT", "nft_do_chain",
                                "10.0.0.2 > 10.0.0.1 udp id=31 ttl=64 len=33")
    assert router.counters() == [RuleCounter("ip", "filter", "input", "udp dport 7 counter drop", 1, 33)]


@needs_lab
def test_a_frame_whose_ip_header_is_cut_short_is_traced_and_dropped_at_ip_rcv_core(router):
    """The trace's netdev chain sees the frame before ip_rcv_core() does, its
    19 bytes of IPv4 header (the destination's last byte missing) read as
    zeros there; the frame is dropped as a bad header and crosses no chain.
    (The drop tracer reads the missing byte from past the frame: the drop and
    the trace are not paired into one journey.)"""
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip filter {
            chain forward {
                type filter hook forward priority filter; policy accept;
                counter accept
            }
        }
    """))
    router.send("p0", bytes(_to_dut(0, "10.0.1.2", 33) / ICMP())[:14 + 19])
    assert [journey.hops for journey in router.journeys()] in ([[]], [[], []])
    assert [(drop.reason, drop.location) for drop in router.drops()] == [("IP_INHDR", "ip_rcv_core")]


@needs_lab
def test_a_locally_generated_packet_crosses_output_then_postrouting(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip filter {
            chain output {
                type filter hook output priority filter; policy accept;
                udp dport 9 counter accept
            }
        }
        table ip nat {
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "p1" masquerade
            }
        }
    """))
    sock = router.socket("udp", ("10.0.1.1", 7001))
    sock.sendto(b"out", ("10.0.1.2", 9))
    assert len(router.collect("p1")) == 1
    [journey] = router.journeys()
    assert journey.hops == [
        Hop("NF_OUTPUT", "ip filter output", "ACCEPT", "rule 2: udp dport 9 counter accept"),
        Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT", 'rule 2: oifname "p1" masquerade'),
    ]


@needs_lab
def test_masquerade_shows_on_the_wire_and_its_reply_is_un_snatted_in_prerouting(router):
    """SNAT happens after the last chain: the frame that left shows it. The reply's
    un-SNAT crosses no chain after conntrack: the conntrack table names its direction."""
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip nat {
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "p1" masquerade
            }
        }
    """))
    router.send("p0", _to_dut(0, "10.0.1.2", 46) / UDP(sport=6000, dport=53))
    router.collect("p1")
    router.send("p1", _to_dut(1, "10.0.1.1", 47) / UDP(sport=53, dport=6000))
    router.collect("p0")
    query, answer = router.journeys()
    assert query.hops == [
        Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT", 'rule 2: oifname "p1" masquerade'),
        Hop("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.0.2:6000 -> 10.0.1.1:6000")]
    assert answer.hops == [Hop("NF_PREROUTING", "nf_nat_packet", "UN-SNAT", "daddr 10.0.1.1:6000 -> 10.0.0.2:6000")]


# what the kernel shows through the trace ------------------------------------------

@needs_lab
def test_nat_chains_run_only_once_something_in_the_ruleset_turns_conntrack_on(router):
    """An empty nat chain does not take conntrack (only ct expressions, nat
    statements, ... call nf_ct_netns_get()); without a conntrack entry on the packet
    nf_nat_inet_fn() accepts before running the nat chains."""
    nat_only = textwrap.dedent("""
        table ip t {
            chain nat_pre { type nat hook prerouting priority dstnat; policy accept; }
            chain filter_fwd { type filter hook forward priority filter; policy accept; }
        }
    """)
    router.sh("nft -f -", stdin=nat_only)
    router.send("p0", _to_dut(0, "10.0.1.2", 41) / UDP(sport=1, dport=2))
    assert [hop.where for hop in router.journeys()[0].hops] == ["ip t filter_fwd"]
    assert router.conntrack() == []
    router.sh("nft add rule ip t filter_fwd ct state invalid drop")
    router.reset()
    router.send("p0", _to_dut(0, "10.0.1.2", 42) / UDP(sport=1, dport=2))
    assert [hop.where for hop in router.journeys()[0].hops] == ["ip t nat_pre", "ip t filter_fwd"]


@needs_lab
def test_base_chains_of_equal_priority_run_the_latest_registered_first(router):
    """nf_hook_entries_grow() puts a new hook before the ones of the same priority,
    whichever the family or table; within one file, chains register in file order."""
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table inet a {
            chain first { type filter hook input priority 0; }
            chain second { type filter hook input priority 0; }
        }
    """))
    router.sh("nft -f -", stdin="table ip b {\n    chain third { type filter hook input priority 0; }\n}\n")
    router.send("p0", _to_dut(0, "10.0.0.1", 45) / UDP(sport=1, dport=2))
    assert [hop.where for hop in router.journeys()[0].hops] == ["ip b third", "inet a second", "inet a first"]


@needs_lab
@needs_bpftrace
def test_the_answers_of_the_dut_are_children_of_the_packets_that_caused_them(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip filter {
            chain input { type filter hook input priority filter; policy accept; }
            chain output { type filter hook output priority filter; policy accept; }
        }
    """))
    router.send("p0", _to_dut(0, "10.0.0.1", 51) / UDP(sport=1000, dport=9))
    router.send("p0", _to_dut(0, "10.0.0.1", 52) / ICMP(id=7, seq=1) / b"ping")
    router.send("p0", _to_dut(0, "10.0.0.1", 53) / TCP(sport=1000, dport=25, flags="S"))
    closed_udp, ping, closed_tcp = router.journeys()
    output = [Hop("NF_OUTPUT", "ip filter output", "ACCEPT", "policy")]
    for journey, reason in ((closed_udp, "NO_SOCKET"), (ping, None), (closed_tcp, "NO_SOCKET")):
        assert journey.hops == [Hop("NF_INPUT", "ip filter input", "ACCEPT", "policy")]
        assert (journey.drop.reason if journey.drop else None) == reason
        [answer] = journey.children
        assert answer.hops == output
    assert " icmp " in str(closed_udp.children[0].packet) and " tcp " in str(closed_tcp.children[0].packet)


@needs_lab
def test_a_packet_the_dut_sends_itself_is_one_journey_through_lo(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table ip nat {
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "lo" snat to 127.0.0.5
            }
        }
        table ip filter {
            chain input { type filter hook input priority filter; policy accept; }
        }
    """))
    sock = router.socket("udp", ("10.0.1.1", 7002))
    sock.sendto(b"me", ("10.0.1.1", 7002))
    assert sock.recv() == (b"me", ("127.0.0.5", 7002))
    [journey] = router.journeys()
    # the SNAT shows: the packet comes back in on lo with its new source
    assert journey.hops == [
        Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT", 'rule 2: oifname "lo" snat to 127.0.0.5'),
        Hop("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.1.1:7002 -> 127.0.0.5:7002"),
        Hop("NF_INPUT", "ip filter input", "ACCEPT", "policy"),
    ]


@needs_lab
def test_netdev_ingress_chains_show_before_prerouting_in_the_mocks_format(router):
    router.sh("nft -f -", stdin=textwrap.dedent("""
        table netdev nd {
            chain in {
                type filter hook ingress device "p0" priority 0; policy accept;
                udp dport 7 counter drop
            }
        }
        table ip filter {
            chain pre { type filter hook prerouting priority raw; policy accept; }
        }
    """))
    router.send("p0", _to_dut(0, "10.0.0.1", 62) / UDP(sport=1, dport=7))
    router.send("p0", _to_dut(0, "10.0.0.1", 63) / UDP(sport=1, dport=9))
    router.send("p1", _to_dut(1, "10.0.1.1", 64) / UDP(sport=1, dport=7))
    dropped, passed, other_port = router.journeys()[:3]
    assert dropped.hops == [Hop("NF_INGRESS", "netdev nd in", "DROP", "rule 2: udp dport 7 counter drop")]
    assert passed.hops == [Hop("NF_INGRESS", "netdev nd in", "ACCEPT", "policy"),
                           Hop("NF_PREROUTING", "ip filter pre", "ACCEPT", "policy")]
    assert other_port.hops == [Hop("NF_PREROUTING", "ip filter pre", "ACCEPT", "policy")]


@needs_lab
def test_iptables_rules_are_traced_as_nft_lists_them(router):
    router.sh("iptables -A INPUT -p udp --dport 24 -j DROP")
    router.send("p0", _to_dut(0, "10.0.0.1", 61) / UDP(sport=1, dport=24))
    [journey] = router.journeys()
    assert journey.hops == [Hop("NF_INPUT", "ip filter INPUT", "DROP", "rule 2: udp dport 24 counter drop")]
    assert router.counters() == [RuleCounter("ip", "filter", "INPUT", "udp dport 24 counter drop", 1, 28)]


# the harness's own table -----------------------------------------------------------

@needs_lab
def test_a_ruleset_flush_does_not_stop_the_trace_and_listings_never_show_its_table(router):
    router.sh("nft -f -", stdin="flush ruleset\n" + PORT_FORWARD)
    router.sh("nft flush ruleset")
    assert router.sh("nft list ruleset") == ""
    router.sh("nft -f -", stdin="flush ruleset\n" + PORT_FORWARD)
    router.send("p0", _to_dut(0, "10.0.0.1", 71) / UDP(sport=5000, dport=8080))
    assert [hop.where for hop in router.journeys()[0].hops] == [
        "ip nat prerouting", "nf_nat_packet", "ip filter forward", "ip filter forward", "ip nat postrouting"]
    assert set(router.lab.run(router.lab.dut, ["nft", "list", "tables"]).splitlines()) == {
        "table ip nat", "table ip filter", "table ip pj_trace", "table netdev pj_trace"}
    assert router.sh("nft list tables") == "table ip nat\ntable ip filter\n"
    listing = json.loads(router.sh("nft -j list ruleset"))["nftables"]
    assert {item["table"]["name"] for item in listing if "table" in item} == {"nat", "filter"}
    assert TRACE_TABLE not in router.sh("nft -a list ruleset")
    assert {(c.table, c.chain) for c in router.counters()} == {("filter", "to_server")}


@needs_lab
def test_a_trace_table_deleted_alone_comes_back_alone(router):
    router.sh("nft add table ip t")

    def trace_tables() -> list[str]:
        return [router.lab.run(router.lab.dut, ["nft", "list", "table", family, TRACE_TABLE])
                for family in ("netdev", "ip")]
    installed = trace_tables()
    router.sh(f"nft delete table netdev {TRACE_TABLE}")
    assert trace_tables() == installed


@needs_lab
def test_without_nftrace_the_target_traces_nothing(monkeypatch):
    target = NetnsTarget(nftrace=False)
    try:
        assert "nftrace" not in target.capabilities
        target.sh("nft add table ip t")
        assert TRACE_TABLE not in target.lab.run(target.lab.dut, ["nft", "list", "tables"])
    finally:
        target.close()


@needs_lab
def test_reset_forgets_the_traced_packets(router):
    router.sh("nft add table ip t")
    router.sh("nft add chain ip t f { type filter hook forward priority 0 \\; }")
    router.send("p0", _to_dut(0, "10.0.1.2", 81) / UDP(sport=1, dport=2))
    assert len(router.journeys()) == 1
    router.reset()
    assert router.journeys() == []


# conntrack --------------------------------------------------------------------------

@needs_lab
def test_conntrack_entries_carry_tuples_tcp_state_status_and_mark(router):
    router.sh("nft -f -", stdin=PORT_FORWARD)
    router.sh("nft add rule ip filter forward meta l4proto tcp ct mark set 0x2a accept")
    router.send("p0", _to_dut(0, "10.0.0.1", 91) / UDP(sport=5000, dport=8080))
    router.send("p1", _to_dut(1, "10.0.0.2", 92) / UDP(sport=80, dport=5000))
    router.send("p0", _to_dut(0, "10.0.2.2", 93) / TCP(sport=1234, dport=22, flags="S"))
    router.send("p0", _to_dut(0, "10.0.0.1", 94) / ICMP(id=9, seq=1))
    entries = {entry.proto: entry for entry in router.conntrack()}
    udp, tcp, icmp = entries["udp"], entries["tcp"], entries["icmp"]
    assert (udp.original, udp.reply) == (("10.0.0.2", "10.0.0.1", 5000, 8080), ("10.0.1.2", "10.0.0.2", 80, 5000))
    assert udp.status == {"confirmed", "seen-reply", "dnat"} and udp.state == ""
    assert (tcp.state, tcp.original, tcp.mark) == ("SYN_SENT", ("10.0.0.2", "10.0.2.2", 1234, 22), 0x2a)
    assert tcp.status == {"confirmed"}
    assert (icmp.original, icmp.reply) == (("10.0.0.2", "10.0.0.1", 9, 8 << 8), ("10.0.0.1", "10.0.0.2", 9, 0))
    assert icmp.status == {"confirmed", "seen-reply"}


# parsing, everywhere -----------------------------------------------------------------

LISTING = """\
table inet fw { # handle 1
\tcounter named { # handle 3
\t\tpackets 0 bytes 0
\t}

\tset blocked { # handle 4
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.9.9.9, 10.9.9.10,
\t\t\t     192.0.2.0/24 }
\t}

\tchain web { # handle 1
\t\tcounter packets 3 bytes 120 comment "web traffic" # handle 6
\t\treturn # handle 7
\t}

\tchain input { # handle 2
\t\ttype filter hook input priority filter; policy drop;
\t\tip saddr @blocked counter packets 1 bytes 60 drop # handle 8
\t\ttcp dport vmap { 22 : accept, 80 : jump web } # handle 9
\t}
}
table ip pj_trace { # handle 2
\tchain pre { # handle 1
\t\ttype filter hook prerouting priority -350; policy accept;
\t\tmeta nftrace set 1 # handle 3
\t}
}
table netdev pj_trace { # handle 4
\tchain in { # handle 1
\t\ttype filter hook ingress devices = { p0, p1, p2 } priority -2147483648; policy accept;
\t\tmeta protocol ip meta nftrace set 1 # handle 2
\t}
}
table ip nat { # handle 3
\tchain prerouting { # handle 1
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tudp dport 8080 dnat to 10.0.1.2:80 # handle 2
\t}
}
"""


def test_the_listing_gives_chains_hooks_and_numbered_rules_without_the_trace_tables():
    chains = parse_ruleset(LISTING)
    assert list(chains) == [("inet", "fw", "web"), ("inet", "fw", "input"), ("ip", "nat", "prerouting")]
    web, fw_input, nat = chains.values()
    assert (web.hook, fw_input.hook, fw_input.type, nat.type) == ("", "input", "filter", "nat")
    assert fw_input.rules == {8: Rule("ip saddr @blocked counter drop", 1, 60),
                              9: Rule("tcp dport vmap { 22 : accept, 80 : jump web }", None, None)}
    assert web.rules[6] == Rule('counter comment "web traffic"', 3, 120)
    assert rule_counters(chains) == [RuleCounter("inet", "fw", "web", 'counter comment "web traffic"', 3, 120),
                                     RuleCounter("inet", "fw", "input", "ip saddr @blocked counter drop", 1, 60)]


def test_rule_texts_are_the_stateless_listing():
    assert rule_text("quota until 10 mbytes used 5 bytes counter packets 3 bytes 4 accept # handle 3") == \
        "quota until 10 mbytes counter accept"


def test_listings_hide_the_trace_tables_in_text_json_and_hooks():
    text = LISTING.replace(" # handle 1\n", "\n")
    assert TRACE_TABLE not in hide_trace_table(["nft", "-a", "list", "ruleset"], text)
    assert hide_trace_table(["nft", "-a", "list", "ruleset"], LISTING).count("table ") == 2
    tables = "table inet fw\ntable ip pj_trace\ntable netdev pj_trace\n"
    assert hide_trace_table(["nft", "list", "tables"], tables) == "table inet fw\n"
    listing = {"nftables": [{"metainfo": {"version": "1.0.6"}},
                            {"table": {"family": "ip", "name": "pj_trace", "handle": 2}},
                            {"chain": {"family": "ip", "table": "pj_trace", "name": "pre"}},
                            {"table": {"family": "inet", "name": "pj_trace", "handle": 3}},
                            {"table": {"family": "netdev", "name": "pj_trace", "handle": 4}},
                            {"rule": {"family": "netdev", "table": "pj_trace", "chain": "in", "handle": 2}}]}
    shown = json.loads(hide_trace_table(["nft", "-j", "list", "ruleset"], json.dumps(listing)))
    assert shown["nftables"] == [listing["nftables"][0], listing["nftables"][3]]
    hooks = ("family ip {\n\thook prerouting {\n\t\t-0000000350 chain ip pj_trace pre [nf_tables]\n\t}\n}\n"
             "family netdev {\n\thook ingress device p0 {\n\t\t-2147483648 chain netdev pj_trace in [nf_tables]\n"
             "\t\t 0000000000 chain netdev nd in [nf_tables]\n\t}\n}\n")
    shown = hide_trace_table(["nft", "list", "hooks"], hooks)
    assert "pj_trace" not in shown and "chain netdev nd in" in shown


FILTER_INPUT = Chain("ip", "filter", "input", "input", "filter", {5: Rule("udp dport 7 drop", None, None)})
NAT_PRE = Chain("ip", "nat", "pre", "prerouting", "nat", {2: Rule("dnat to 10.0.1.2", None, None)})
TRACE_PRE = Chain("ip", TRACE_TABLE, "pre", "prerouting", "filter")
TRACE_INGRESS = Chain("netdev", TRACE_TABLE, "in", "ingress", "filter")
NETDEV_IN = Chain("netdev", "nd", "in", "ingress", "filter", {2: Rule("udp dport 7 counter drop", None, None)})


def _header(packet) -> Ipv4Header:
    raw = bytes(packet)
    return Ipv4Header(raw[:20], raw[20:40])


def _event(chain: Chain, trace_id: int, packet=None, handle: int = 0, verdict: str = "ACCEPT",
           kind: int = NFT_TRACETYPE_RULE, target: str = "", iif: int = 2) -> TraceEvent:
    return TraceEvent(chain.family, chain.table, chain.name, kind, verdict, target, trace_id,
                      _header(packet) if packet is not None else None, iif, None, chain.rules.get(handle),
                      handle, chain)


def _traced(trace_id: int, packet, *chains: tuple[Chain, int, str],
            ingress: tuple[tuple[Chain, int, str], ...] = ()) -> list[TraceEvent]:
    """A packet from a port: through the netdev pj_trace, the `ingress` chains, the
    ip pj_trace and then `chains`, each given as (chain, rule handle or 0 for the
    policy, verdict), each chain's first message with `packet` as it saw it."""
    events = _through(TRACE_INGRESS, trace_id, packet, ingress)
    return events + (_through(TRACE_PRE, trace_id, packet, chains) if events[-1].verdict != "DROP" else [])


def _through(trace_chain: Chain, trace_id: int, packet, chains) -> list[TraceEvent]:
    events = [_event(trace_chain, trace_id, packet, 3, "CONTINUE"),
              _event(trace_chain, trace_id, kind=NFT_TRACETYPE_POLICY)]
    for chain, handle, verdict in chains:
        kind = NFT_TRACETYPE_RULE if handle else NFT_TRACETYPE_POLICY
        events.append(_event(chain, trace_id, packet, handle, verdict, kind))
    return events


def test_a_reused_trace_id_starts_a_new_packet_at_the_trace_table():
    udp = IP(src="10.0.0.2", dst="10.0.0.1", id=1) / UDP(dport=7)
    events = _traced(0xAB, udp, (FILTER_INPUT, 5, "DROP")) + _traced(0xAB, udp, (FILTER_INPUT, 0, "ACCEPT"))
    dropped, accepted = build_journeys(events, [], [])
    assert _hops(dropped) == [("NF_INPUT", "ip filter input", "DROP", "rule 5: udp dport 7 drop")]
    assert _hops(accepted) == [("NF_INPUT", "ip filter input", "ACCEPT", "policy")]


def test_netdev_ingress_and_prerouting_messages_of_one_id_are_one_packet_and_ingress_starts_the_next():
    """nft_trace_init() hashes the skb, its flow hash and skb_iif, none of which
    change between netdev ingress and PREROUTING; a reused skb repeats the id."""
    udp = IP(src="10.0.0.2", dst="10.0.0.1", id=1) / UDP(dport=7)
    events = (_traced(0xAB, udp, ingress=[(NETDEV_IN, 2, "DROP")])
              + _traced(0xAB, udp, (FILTER_INPUT, 0, "ACCEPT"), ingress=[(NETDEV_IN, 0, "ACCEPT")])
              + _traced(0xAB, udp, (FILTER_INPUT, 5, "DROP")))
    dropped, accepted, untouched = build_journeys(events, [], [])
    assert _hops(dropped) == [("NF_INGRESS", "netdev nd in", "DROP", "rule 2: udp dport 7 counter drop")]
    assert _hops(accepted) == [("NF_INGRESS", "netdev nd in", "ACCEPT", "policy"),
                               ("NF_INPUT", "ip filter input", "ACCEPT", "policy")]
    assert _hops(untouched) == [("NF_INPUT", "ip filter input", "DROP", "rule 5: udp dport 7 drop")]


def test_a_packet_dropped_between_ingress_and_prerouting_keeps_its_drop_and_the_next_starts_anew():
    """ip_rcv_core() drops a bad checksum before PREROUTING: the packet's journey
    has no hop the test sees, as before the netdev chain traced it."""
    bad = IP(src="10.0.0.2", dst="10.0.0.1", id=1, chksum=1) / UDP(dport=7)
    good = IP(src="10.0.0.2", dst="10.0.0.1", id=2) / UDP(dport=7)
    early = Drop("IP_CSUM", "IP_RCV", "ip_rcv_core", "10.0.0.2 > 10.0.0.1 udp id=1 ttl=64 len=28")
    events = _through(TRACE_INGRESS, 5, bad, []) + _traced(5, good, (FILTER_INPUT, 0, "ACCEPT"))
    dropped, accepted = build_journeys(events, [early], [])
    assert (dropped.hops, dropped.drop) == ([], early)
    assert _hops(accepted) == [("NF_INPUT", "ip filter input", "ACCEPT", "policy")]


def test_a_rewrite_between_two_chains_is_a_nat_hop_at_the_hook_where_that_nat_happens():
    before = IP(src="10.0.0.2", dst="10.0.0.1", id=1) / UDP(sport=5, dport=8080)
    after = IP(src="10.0.0.2", dst="10.0.1.2", id=1, ttl=63) / UDP(sport=5, dport=8080)
    forward = Chain("ip", "filter", "fwd", "forward", "filter")
    events = _traced(1, before, (NAT_PRE, 2, "ACCEPT")) + [_event(forward, 1, after, kind=NFT_TRACETYPE_POLICY)]
    masqueraded = Ether() / IP(src="10.0.1.1", dst="10.0.1.2", id=1, ttl=63) / UDP(sport=5, dport=8080)
    [journey] = build_journeys(events, [], [bytes(masqueraded)])
    assert _hops(journey) == [
        ("NF_PREROUTING", "ip nat pre", "ACCEPT", "rule 2: dnat to 10.0.1.2"),
        ("NF_PREROUTING", "nf_nat_packet", "DNAT", "daddr 10.0.0.1:8080 -> 10.0.1.2:8080"),
        ("NF_FORWARD", "ip filter fwd", "ACCEPT", "policy"),
        ("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.0.2:5 -> 10.0.1.1:5"),
    ]


def test_a_drop_goes_to_the_packet_whose_rule_dropped_it_and_untraced_drops_stand_alone():
    same = IP(src="10.0.0.2", dst="10.0.0.1", id=1) / UDP(dport=7)
    events = _traced(1, same, (FILTER_INPUT, 0, "ACCEPT")) + _traced(2, same, (FILTER_INPUT, 5, "DROP"))
    line = "10.0.0.2 > 10.0.0.1 udp id=1 ttl=64 len=28"
    by_rule = Drop("NETFILTER_DROP", "NF_INPUT", "nft_do_chain", line)
    no_socket = Drop("NO_SOCKET", "L4", "__udp4_lib_rcv", line)
    early = Drop("IP_CSUM", "IP_RCV", "ip_rcv_core", "10.0.0.9 > 10.0.0.1 udp id=5 ttl=64 len=28")
    accepted, dropped, untraced = build_journeys(events, [by_rule, no_socket, early], [])
    assert (accepted.drop, dropped.drop, untraced.drop) == (no_socket, by_rule, early)
    assert untraced.hops == []


def test_an_icmp_error_of_the_dut_is_a_child_of_the_packet_it_quotes():
    probe = IP(src="10.0.0.2", dst="10.0.0.1", id=77) / UDP(dport=9)
    error = IP(src="10.0.0.1", dst="10.0.0.2", id=900, proto=1) / ICMP(type=3, code=3) / bytes(probe)
    trace_out = Chain("ip", TRACE_TABLE, "out", "output", "filter")
    events = _traced(1, probe, (FILTER_INPUT, 0, "ACCEPT")) + [_event(trace_out, 2, error, 4, "CONTINUE")]
    [journey] = build_journeys(events, [], [])
    assert [str(child.packet) for child in journey.children] == ["10.0.0.1 > 10.0.0.2 icmp id=900 ttl=64 len=56"]


# NAT after the last chain, from the conntrack entry ---------------------------------

from harness.drivers.nftrace import Conntrack, entry_of  # noqa: E402  (this file grows by appending)
from harness.journey import CtEntry  # noqa: E402

NAT_POST = Chain("ip", "nat", "post", "postrouting", "nat", {3: Rule('oifname "p1" masquerade', None, None)})
QUERY = IP(src="10.0.0.2", dst="10.0.1.2", id=1) / UDP(sport=5000, dport=53)
MASQUERADED = CtEntry("udp", "", ("10.0.0.2", "10.0.1.2", 5000, 53), ("10.0.1.2", "10.0.1.1", 53, 5000),
                      frozenset({"snat"}), 0)


def _forwarded(packet, **rewrite):
    """`packet` as it leaves the DUT: TTL one less, the fields given rewritten."""
    forwarded = IP(bytes(packet))
    forwarded.ttl -= 1
    for field_name, value in rewrite.items():
        setattr(forwarded, field_name, value)
    del forwarded.chksum
    return forwarded


def _snat_hops(journey) -> list[tuple[str, str, str, str]]:
    return [hop for hop in _hops(journey) if hop[1] == "nf_nat_packet"]


def test_snat_after_the_last_chain_is_the_reply_tuples_not_what_tc_egress_wrote_after_it():
    """Masqueraded to 10.0.1.1, then a TC egress program wrote 10.0.1.77: the frame
    shows TC's source, the conntrack entry netfilter's."""
    events = _traced(1, QUERY, (NAT_POST, 3, "ACCEPT"))
    frame = bytes(Ether() / _forwarded(QUERY, src="10.0.1.77"))
    [journey] = build_journeys(events, [], [frame], Conntrack(lambda: [MASQUERADED]))
    assert _snat_hops(journey) == [("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.0.2:5000 -> 10.0.1.1:5000")]


def test_without_a_conntrack_entry_the_frame_that_left_shows_the_rewrite():
    events = _traced(1, QUERY, (NAT_POST, 3, "ACCEPT"))
    frame = bytes(Ether() / _forwarded(QUERY, src="10.0.1.77"))
    for conntrack in (None, Conntrack(list)):
        [journey] = build_journeys(events, [], [frame], conntrack)
        assert _snat_hops(journey) == [("NF_POSTROUTING", "nf_nat_packet", "SNAT",
                                        "saddr 10.0.0.2:5000 -> 10.0.1.77:5000")]


def test_a_packet_past_its_dnat_gets_no_rewrite_in_postrouting_whatever_tc_writes():
    """Its POSTROUTING header already has the reply tuple's source as destination:
    the entry fits it part way through its NAT, with nothing left to do."""
    dnatted = IP(src="10.0.0.2", dst="10.0.1.2", id=1, ttl=63) / UDP(sport=5000, dport=80)
    entry = CtEntry("udp", "", ("10.0.0.2", "10.0.0.1", 5000, 8080), ("10.0.1.2", "10.0.0.2", 80, 5000),
                    frozenset({"dnat"}), 0)
    post = Chain("ip", "filter", "post", "postrouting", "filter")
    events = _traced(1, dnatted, (post, 0, "ACCEPT"))
    frame = bytes(Ether() / IP(src="10.0.1.77", dst="10.0.1.2", id=1, ttl=63) / UDP(sport=5000, dport=80))
    [journey] = build_journeys(events, [], [frame], Conntrack(lambda: [entry]))
    assert _snat_hops(journey) == []
    assert entry_of([entry], _header(dnatted)) == (entry, 0)


def test_a_replys_un_dnat_in_postrouting_comes_from_the_original_tuple():
    reply = IP(src="10.0.1.2", dst="10.0.0.2", id=5) / UDP(sport=80, dport=5000)
    entry = CtEntry("udp", "", ("10.0.0.2", "10.0.0.1", 5000, 8080), ("10.0.1.2", "10.0.0.2", 80, 5000),
                    frozenset({"dnat"}), 0)
    forward = Chain("ip", "filter", "fwd", "forward", "filter")
    events = _traced(1, reply, (forward, 0, "ACCEPT"))
    [journey] = build_journeys(events, [], [bytes(Ether() / _forwarded(reply, src="10.0.0.1", sport=8080))],
                               Conntrack(lambda: [entry]))
    assert _snat_hops(journey) == [("NF_POSTROUTING", "nf_nat_packet", "UN-DNAT",
                                    "saddr 10.0.1.2:80 -> 10.0.0.1:8080")]


def test_an_entry_fits_a_packet_of_its_protocol_and_an_echo_of_its_id():
    echo = CtEntry("icmp", "", ("10.0.0.2", "10.0.1.2", 9, 8 << 8), ("10.0.1.2", "10.0.1.1", 9, 0),
                   frozenset({"snat"}), 0)
    tcp = IP(src="10.0.0.2", dst="10.0.1.2") / TCP(sport=5000, dport=53)
    assert entry_of([MASQUERADED], _header(tcp)) is None
    assert entry_of([MASQUERADED, echo], _header(IP(src="10.0.0.2", dst="10.0.1.2") / ICMP(type=8, id=9))) == (echo, 0)
    assert entry_of([echo], _header(IP(src="10.0.0.2", dst="10.0.1.2") / ICMP(type=8, id=10))) is None
    error = IP(src="10.0.1.2", dst="10.0.1.1") / ICMP(type=3, code=3) / bytes(QUERY)
    assert entry_of([MASQUERADED], _header(error)) == (MASQUERADED, 1)


def test_a_packet_shot_after_its_snat_shows_the_snat_and_takes_the_drop_of_its_translated_headers():
    """No frame left, but the TC egress drop carries the source the entry names."""
    events = _traced(1, QUERY, (NAT_POST, 3, "ACCEPT"))
    shot = Drop("TC_EGRESS", "TC_EGRESS", "__dev_queue_xmit", "10.0.1.1 > 10.0.1.2 udp id=1 ttl=64 len=28")
    [journey] = build_journeys(events, [shot], [], Conntrack(lambda: [MASQUERADED]))
    assert _snat_hops(journey) == [("NF_POSTROUTING", "nf_nat_packet", "SNAT", "saddr 10.0.0.2:5000 -> 10.0.1.1:5000")]
    assert journey.drop == shot
    traced, untraced = build_journeys(events, [shot], [])
    assert (_snat_hops(traced), traced.drop, untraced.drop) == ([], None, shot)


def test_an_address_a_rule_set_with_a_payload_statement_is_no_nat_rewrite():
    """`ip daddr set` in a mangle chain: its trace message already shows the new
    address (the rule ran before its message was sent); the lab names no NAT for it."""
    mangle = Chain("ip", "t", "c0", "prerouting", "mangle", {2: Rule("counter ip daddr set 10.0.2.2", None, None)})
    sent = IP(src="10.0.0.1", dst="224.0.0.1", id=9) / UDP(sport=53, dport=53)
    rewritten = IP(src="10.0.0.1", dst="10.0.2.2", id=9) / UDP(sport=53, dport=53)
    events = _through(TRACE_INGRESS, 1, sent, ()) + [
        _event(TRACE_PRE, 1, sent, 3, "CONTINUE"), _event(TRACE_PRE, 1, kind=NFT_TRACETYPE_POLICY),
        _event(mangle, 1, rewritten, 2, "CONTINUE"), _event(mangle, 1, kind=NFT_TRACETYPE_POLICY)]
    drop = Drop("IP_LOCAL_SOURCE", "ROUTING", "ip_rcv_finish_core", _header(rewritten).summary())
    (journey,) = build_journeys(events, [drop], [])
    assert [(hop.where, hop.verdict) for hop in journey.hops] == [("ip t c0", "ACCEPT")]
    assert journey.drop == drop


def test_a_drop_of_a_packet_a_later_rule_rewrote_goes_to_that_packet():
    """nft_trace_notify() dumps the packet with a chain's first message only
    (`if (!info->packet_dumped)`): a rule after it that wrote `ip daddr set` and
    `ip ttl set` leaves no message with the new header, which the drop (kfree_skb
    reads the packet as freed) has. Seed 6, scenarios 860 and 1100."""
    post = Chain("ip", "t", "c0", "postrouting", "filter", {2: Rule("counter", None, None),
                                                          3: Rule("counter ip daddr set 10.0.2.2", None, None),
                                                          4: Rule("counter ip ttl set 1", None, None)})
    error = IP(src="10.0.0.1", dst="10.0.0.2", id=900, proto=1) / ICMP(type=3, code=0) / (b"x" * 8)
    rewritten = IP(src="10.0.0.1", dst="10.0.2.2", id=900, proto=1, ttl=1) / ICMP(type=3, code=0) / (b"x" * 8)
    trace_out = Chain("ip", TRACE_TABLE, "out", "output", "filter")
    events = [_event(trace_out, 1, error, 4, "CONTINUE"), _event(trace_out, 1, kind=NFT_TRACETYPE_POLICY),
              _event(post, 1, error, 2, "CONTINUE"), _event(post, 1, None, 3, "CONTINUE"),
              _event(post, 1, None, 4, "CONTINUE"), _event(post, 1, kind=NFT_TRACETYPE_POLICY, verdict="DROP")]
    drop = Drop("NETFILTER_DROP", "NF_POSTROUTING", "nft_do_chain", _header(rewritten).summary())
    (journey,) = build_journeys(events, [drop], [])
    assert journey.drop == drop
    assert str(journey.packet) == "10.0.0.1 > 10.0.0.2 icmp id=900 ttl=64 len=36"


import socket  # noqa: E402

from harness.drivers import nfnetlink as nl  # noqa: E402
from harness.drivers.nftrace import IPCTNL_MSG_CT_DELETE, NftTrace  # noqa: E402


def test_an_entry_destroyed_before_the_table_is_read_still_names_the_nat_of_its_packets():
    """tcp_packet() kills an entry whose only reply is a RST as the RST passes conntrack
    (nf_ct_kill_acct(): 'we can delete the conntrack immediately'), so no dump has it:
    the lab keeps what ctnetlink reports destroyed (NFNLGRP_CONNTRACK_DESTROY,
    IPCTNL_MSG_CT_DELETE) and reads it with the table. The RST answering a SYN SNATed
    in INPUT is un-SNATed in OUTPUT (nf_nat_packet(): reply direction, IPS_SRC_NAT)."""
    snatted = CtEntry("tcp", "", ("10.0.0.2", "10.0.0.1", 40000, 80), ("10.0.0.1", "10.0.0.1", 80, 40000),
                      frozenset({"snat"}), 0, 10)
    trace = NftTrace.__new__(NftTrace)  # its destroy socket alone, fed by hand
    trace._ct_destroy_socket, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    trace._ct_destroy_socket.setblocking(False)
    trace._destroyed = []
    event = bytearray(nl.ct_new_message(snatted, 0))
    event[4:6] = (nl.NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE).to_bytes(2, "little")
    kernel.send(bytes(event))
    (destroyed,) = trace._destroyed_entries()
    assert (destroyed.original, destroyed.reply, "snat" in destroyed.status) == (snatted.original, snatted.reply, True)
    rst = IP(src="10.0.0.1", dst="10.0.0.1", id=0, flags="DF") / TCP(sport=80, dport=40000, flags="RA")
    unsnatted = IP(src="10.0.0.1", dst="10.0.0.2", id=0, flags="DF") / TCP(sport=80, dport=40000, flags="RA")
    trace_out = Chain("ip", TRACE_TABLE, "out", "output", "filter")
    filter_out = Chain("ip", "t", "c", "output", "filter")
    events = [_event(trace_out, 2, rst, 4, "CONTINUE"), _event(trace_out, 2, kind=NFT_TRACETYPE_POLICY),
              _event(filter_out, 2, unsnatted, kind=NFT_TRACETYPE_POLICY)]
    [journey] = build_journeys(events, [], [], Conntrack(lambda: [destroyed]))
    assert _snat_hops(journey) == [("NF_OUTPUT", "nf_nat_packet", "UN-SNAT", "daddr 10.0.0.1:40000 -> 10.0.0.2:40000")]


def test_a_frame_out_whose_ihl_is_under_5_has_no_header_to_pair_a_traced_packet_with():
    """An XDP program may send such a frame out as it came (harness.diff seed 22: the
    lab's trace failed reading its total length from an empty header)."""
    frame = bytes(Ether() / IP(src="10.0.0.2", dst="10.0.2.2") / UDP())
    assert Ipv4Header.from_frame(frame[:14] + bytes([0x40]) + frame[15:]) is None
    assert Ipv4Header.from_frame(frame) is not None
