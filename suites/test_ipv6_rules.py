"""IPv6 policy routing: `ip -6 rule` (net/ipv6/fib6_rules.c on the rules
engine IPv4 shares, net/core/fib_rules.c) as the kernel keeps and prints the
rules, and what they do to forwarded and locally sent packets: a second
table by source, by a fwmark nft sets, and the rule actions' errors."""
from __future__ import annotations

import errno
from socket import AF_INET6

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6DestUnreach

from harness.target import CommandError
from harness.testing import drops

PAYLOAD = b"packet-journey"
FAR = "2001:db8:99::7"  # main routes it through h1; table 100 through h2


def _refusal(target, command: str) -> tuple[str, int]:
    with pytest.raises(CommandError) as refused:
        target.sh(command)
    return str(refused.value).split("failed: ", 1)[1].strip(), refused.value.returncode


@pytest.mark.ipv6
def test_ip_6_rule_lists_the_two_default_rules_and_new_ones_by_priority(target):
    """fib6_rules_net_init(): local at 0 and main at 32766, no default table;
    a rule without a priority takes one below the second rule's. (Each rule
    selects something: a lab DUT refuses a rule its SSH session would match.)"""
    port = target.ports[0].name
    assert target.sh("ip -6 rule") == "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
    target.sh("ip -6 rule add from 2001:db8:1::/64 table 100")
    target.sh("ip -6 rule add fwmark 0x5 lookup 200 pref 300")
    target.sh("ip -6 rule add to 2001:db8::1 prohibit")
    target.sh(f"ip -6 rule add iif {port} unreachable")
    target.sh("ip -6 rule add not from all fwmark 7/0xff suppress_prefixlength 0 lookup main pref 50")
    target.sh("ip -6 rule add to 2001:db8:98::/64 goto 32766 pref 10")
    target.sh("ip -6 rule add from 2001:db8:3::1 blackhole")
    target.sh("ip -6 rule add to 2001:db8:97::/64 pref 89 goto 999")
    assert target.sh("ip -6 rule") == (
        "0:\tfrom all lookup local\n"
        "9:\tfrom 2001:db8:3::1 blackhole\n"
        "10:\tfrom all to 2001:db8:98::/64 goto 32766\n"
        "50:\tnot from all fwmark 0x7/0xff lookup main suppress_prefixlength 0\n"
        "89:\tfrom all to 2001:db8:97::/64 goto 999 [unresolved]\n"
        f"298:\tfrom all iif {port} unreachable\n"
        "299:\tfrom all to 2001:db8::1 prohibit\n"
        "300:\tfrom all fwmark 0x5 lookup 200\n"
        "32765:\tfrom 2001:db8:1::/64 lookup 100\n"
        "32766:\tfrom all lookup main\n")
    target.sh("ip -6 rule del pref 300")
    target.sh("ip -6 rule del pref 299")
    target.sh("ip -6 rule del pref 298")
    target.sh("ip -6 rule del pref 10")
    target.sh("ip -6 rule del pref 9")
    assert target.sh("ip -j -6 rule show") == (
        '[{"priority":0,"src":"all","table":"local"},{"priority":50,"not":null,"src":"all","fwmark":"0x7",'
        '"fwmask":"0xff","table":"main","suppress_prefixlen":0},{"priority":89,"src":"all","dst":"2001:db8:97::",'
        '"dstlen":64,"goto":999,"unresolved":null},{"priority":32765,"src":"2001:db8:1::","srclen":64,"table":"100"},'
        '{"priority":32766,"src":"all","table":"main"}]\n')
    # fib6_rule_configure(): a lookup rule makes its table
    assert target.sh("ip -6 route show table 100") == ""
    # the IPv4 rules are another family's list
    assert target.sh("ip rule") == ("0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
                                    "32767:\tfrom all lookup default\n")


@pytest.mark.ipv6
def test_ip_6_rule_requests_fail_as_the_kernel_refuses_them(target):
    assert _refusal(target, "ip -6 rule add from 2001:db8:7::/64 table 0") == ("Error: Invalid table.", 2)
    # iproute2 leaves table 0 after an action: IPv6 refuses it
    assert _refusal(target, "ip -6 rule add from 2001:db8:7::/64 pref 90 type unicast") == ("Error: Invalid table.", 2)
    assert _refusal(target, "ip -6 rule add dsfield 0x11 table 7") == (
        "Error: Invalid dsfield (tos): ECN bits must be 0.", 2)
    assert _refusal(target, "ip -6 rule add to 2001:db8:98::/64 pref 88 goto 60") == \
        ("Error: Backward goto not supported.", 2)
    assert _refusal(target, "ip -6 rule add from 10.0.0.0/8 table 5") == (
        'Error: inet6 prefix is expected rather than "10.0.0.0/8".', 1)
    # `ip rule` is IPv4's: an IPv6 prefix has the wrong length for the family
    assert _refusal(target, "ip rule add from 2001:db8:9::/48 table 5") == ("Error: Invalid source address.", 2)
    assert _refusal(target, "ip rule add to 2001:db8:9::/48 table 5") == ("Error: Invalid dst address.", 2)
    assert _refusal(target, "ip -6 rule del pref 1234") == ("RTNETLINK answers: No such file or directory", 2)
    target.sh("ip -6 rule add from 2001:db8:1::/64 table 100 pref 100")
    assert _refusal(target, "ip -6 rule add from 2001:db8:1::/64 table 100 pref 100") == (
        "RTNETLINK answers: File exists", 2)
    target.sh("ip -6 rule del pref 100")
    assert target.sh("ip -6 rule") == "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"


def _two_ways(target, router6):
    """FAR through h1 in main, through h2 in table 100."""
    h1, h2 = router6[1], router6[2]
    target.sh(f"ip -6 route add {FAR}/128 via {h1.ip6}")
    target.sh(f"ip -6 route add {FAR}/128 via {h2.ip6} table 100")


def test_a_source_rule_forwards_that_source_by_the_second_table(target, router6):
    h0, h1, h2 = router6
    _two_ways(target, router6)
    target.sh("ip -6 rule add from 2001:db8::2/128 table 100 pref 100")
    # ip6_route_input(): a received packet's flow has its source (RT6_LOOKUP_F_HAS_SADDR)
    target.send(h0.port, h0.to_dut6(dst=FAR, hlim=64) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect(h2.port, h2.from_dut6(src=h0.ip6, dst=FAR, hlim=63) / UDP(sport=1, dport=2) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(src="2001:db8::3", dst=FAR, hlim=64) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect(h1.port, h1.from_dut6(src="2001:db8::3", dst=FAR, hlim=63) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == []
    assert target.sh(f"ip -6 route get {FAR} from {h0.ip6} iif {h0.port.name}") == \
        f"{FAR} from {h0.ip6} via {h2.ip6} dev {h2.port.name} table 100 metric 1024 iif {h0.port.name} pref medium\n"
    # a local flow with no source yet matches no `from` rule
    assert target.sh(f"ip -6 route get {FAR}") == \
        f"{FAR} from :: via {h1.ip6} dev {h1.port.name} src {h1.dut_ip6} metric 1024 pref medium\n"


def test_a_fwmark_set_by_nft_in_prerouting_picks_the_table_of_its_rule(target, router6):
    h0, h1, h2 = router6
    _two_ways(target, router6)
    target.sh("ip -6 rule add fwmark 0x10 table 100 pref 100")
    target.sh("nft -f -", stdin="table ip6 mangle {\n"
                                " chain pre { type filter hook prerouting priority mangle;\n"
                                "  udp dport 53 meta mark set 0x10; }\n"
                                "}\n")
    target.send(h0.port, h0.to_dut6(dst=FAR, hlim=64) / UDP(sport=1, dport=53) / PAYLOAD)
    target.expect(h2.port, h2.from_dut6(src=h0.ip6, dst=FAR, hlim=63) / UDP(sport=1, dport=53) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(dst=FAR, hlim=64) / UDP(sport=1, dport=54) / PAYLOAD)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=FAR, hlim=63) / UDP(sport=1, dport=54) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == []
    assert target.sh(f"ip -6 route get {FAR} mark 0x10") == \
        f"{FAR} from :: via {h2.ip6} dev {h2.port.name} table 100 src {h2.dut_ip6} metric 1024 pref medium\n"


def test_rule_actions_answer_a_forwarded_packet_as_their_entries_do(target, router6):
    """fib6_rule_action(): prohibit is ip6_prohibit_entry (administratively
    prohibited), unreachable ip6_null_entry (no route), blackhole
    ip6_blk_hole_entry (silence)."""
    h0 = router6[0]
    _two_ways(target, router6)
    target.sh("ip -6 rule add to 2001:db8:99::7 prohibit pref 100")
    target.sh("ip -6 rule add to 2001:db8:99::8 unreachable pref 101")
    target.sh("ip -6 rule add to 2001:db8:99::9 blackhole pref 102")
    prohibited = h0.to_dut6(dst="2001:db8:99::7") / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, prohibited)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=1), prohibited))
    unreachable = h0.to_dut6(dst="2001:db8:99::8") / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, unreachable)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=0), unreachable))
    target.send(h0.port, h0.to_dut6(dst="2001:db8:99::9") / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("IP_INNOROUTES", "ROUTING", "ip6_pkt_prohibit"),
                             ("IP_INNOROUTES", "ROUTING", "ip6_pkt_discard"),
                             ("NOT_SPECIFIED", "ROUTING", "dst_discard_out")]


@pytest.mark.parametrize("action, error", [("prohibit", errno.EACCES), ("unreachable", errno.ENETUNREACH),
                                           ("blackhole", errno.EINVAL)])
def test_a_local_sender_gets_the_errno_of_the_rule_action(target, router6, action, error):
    """The dst of the rule's action carries its error to udpv6_sendmsg()."""
    h0 = router6[0]
    _two_ways(target, router6)
    target.sh(f"ip -6 rule add from {h0.dut_ip6} to {FAR} {action} pref 100")
    sock = target.socket("udp", (h0.dut_ip6, 5000), family=AF_INET6)
    with pytest.raises(OSError) as raised:
        sock.sendto(PAYLOAD, (FAR, 2))
    assert raised.value.errno == error
    target.expect_nothing()


@pytest.mark.requires("fresh_devices")  # a lab DUT's namespace keeps fib6_has_custom_rules from earlier tests
def test_until_a_rule_is_added_main_is_looked_up_even_with_its_rule_deleted(target, router6):
    """fib6_rule_lookup(): fib6_has_custom_rules, set by the first rule added
    (fib6_rule_configure()) and never cleared, chooses the rules walk; before
    it, local then main whatever the rules list holds."""
    h1 = router6[1]
    target.sh(f"ip -6 route add {FAR}/128 via {h1.ip6}")
    target.sh("ip -6 rule del pref 32766")
    assert target.sh(f"ip -6 route get {FAR}") == \
        f"{FAR} from :: via {h1.ip6} dev {h1.port.name} src {h1.dut_ip6} metric 1024 pref medium\n"
    target.sh("ip -6 rule add to 2001:db8:98::/64 pref 100 nop")
    assert _refusal(target, f"ip -6 route get {FAR}") == ("RTNETLINK answers: Network is unreachable", 2)
