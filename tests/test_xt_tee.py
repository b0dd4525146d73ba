"""TEE, TPROXY and CONNSECMARK on the mock (netfilter/xt_tee.py,
xt_tproxy.py, xt_connsecmark.py): what iptables 1.8.9 and the 6.18 kernel
refuse and how iptables-save, `iptables -L` and nft 1.0.6 show them (each
expectation the real tools' answer to the same command in a scratch
namespace), and what each does to a packet and its journey.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING
from harness.mockkernel.target import sh
from harness.testing import forward
from test_nft import hook, packet

KERNEL_REFUSAL = "RULE_APPEND failed (Invalid argument)"


def rules(target, prog: str = "iptables-save") -> list[str]:
    return [line for line in target.sh(prog).splitlines() if line.startswith("-A")]


@pytest.mark.parametrize("command, message", [
    ("iptables -A INPUT -j TEE --gateway 0.0.0.0", KERNEL_REFUSAL),
    ("ip6tables -A INPUT -j TEE --gateway 10.0.0.1",
     "getaddrinfo: Address family for hostname not supported"),
    ("iptables -A INPUT -j TEE ! --gateway 1.1.1.1", 'TEE: option "--gateway" cannot be inverted.'),
    ("iptables -t mangle -A PREROUTING -p udp -j TPROXY --on-port 0x10",
     'Port "0x10" does not resolve to anything.'),
    ("iptables -A INPUT -p udp -j TPROXY --on-port 1", KERNEL_REFUSAL),
    ("iptables -t mangle -A INPUT -p udp -j TPROXY --on-port 1", KERNEL_REFUSAL),
    ("iptables -t mangle -A PREROUTING ! -p udp -j TPROXY --on-port 1", KERNEL_REFUSAL),
    ("iptables -t mangle -A PREROUTING -p icmp -j TPROXY --on-port 1", KERNEL_REFUSAL),
    ("iptables -t mangle -A PREROUTING -p tcp -j TPROXY --on-ip 1.1.1.1",
     'TPROXY: option "--on-port" must be specified'),
    ("iptables -A INPUT -j CONNSECMARK --save", KERNEL_REFUSAL),
    ("iptables -t mangle -A INPUT -j CONNSECMARK --save --restore",
     'CONNSECMARK: option "--save" cannot be used together with "--restore".'),
    ("iptables -t mangle -A INPUT -j CONNSECMARK --save --save", 'CONNSECMARK: option "--save" can only be used once.'),
])
def test_refused_with_the_real_tools_message(mock_router, refusal, command, message):
    target, _ = mock_router
    assert message in refusal(target, command)


def test_saved_listed_and_translated_as_the_real_tools_show_them(mock_router):
    """tee_tg_save() (--oif cut to IFNAMSIZ - 1, a gateway read by
    getaddrinfo(), `1` is 0.0.0.1), tproxy_tg_save4()/6() (every field, given
    or not), CONNSECMARK_save(); nft lists TEE as tee_tg_xlate()'s `dup`,
    the others as xt targets."""
    target, _ = mock_router
    for command in ("iptables -A INPUT -j TEE --gateway 1.2.3.4 --oif averyveryverylongname0",
                    "iptables -A INPUT -j TEE --gateway 1 --oif eth9",
                    "ip6tables -A INPUT -j TEE --gateway 2001:db8::1 --oif eth0",
                    "iptables -t mangle -A PREROUTING -p udp -j TPROXY --on-port http",
                    "iptables -t mangle -A PREROUTING -p udp -j TPROXY --on-port 1 --on-ip 10.0.0.1 --tproxy-mark 5",
                    "ip6tables -t mangle -A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 2001:db8::1 "
                    "--tproxy-mark 0x3/0x7",
                    "iptables -t security -A INPUT -j CONNSECMARK --restore",
                    "ip6tables -t mangle -A INPUT -j CONNSECMARK --save"):
        target.sh(command)
    assert rules(target) == [
        "-A PREROUTING -p udp -j TPROXY --on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0",
        "-A PREROUTING -p udp -j TPROXY --on-port 1 --on-ip 10.0.0.1 --tproxy-mark 0x5/0xffffffff",
        "-A INPUT -j CONNSECMARK --restore",
        "-A INPUT -j TEE --gateway 1.2.3.4 --oif averyveryverylo",
        "-A INPUT -j TEE --gateway 0.0.0.1 --oif eth9"]
    assert rules(target, "ip6tables-save") == [
        "-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 2001:db8::1 --tproxy-mark 0x3/0x7",
        "-A INPUT -j CONNSECMARK --save",
        "-A INPUT -j TEE --gateway 2001:db8::1 --oif eth0"]
    listed = target.sh("nft list ruleset")
    for line in ("counter packets 0 bytes 0 dup to 1.2.3.4 device averyveryverylo",
                 "counter packets 0 bytes 0 dup to 2001:db8::1 device eth0",
                 "meta l4proto udp counter packets 0 bytes 0 xt target TPROXY",
                 "counter packets 0 bytes 0 xt target CONNSECMARK"):
        assert line in listed
    assert "TEE gw:0.0.0.1 oif=eth9" in target.sh("iptables -L INPUT -n")
    assert "TPROXY redirect 10.0.0.1:1 mark 0x5/0xffffffff" in target.sh("iptables -t mangle -L PREROUTING -n")
    assert "CONNSECMARK restore" in target.sh("iptables -t security -L INPUT -n")


def test_tee_copy_is_a_child_journey_and_a_copy_is_not_teed_again(mock_router):
    """nf_dup_ipv4(): the copy's journey starts under the original's; it
    crosses OUTPUT and POSTROUTING, where a TEE rule does nothing while the
    copy is being sent (nf_skb_duplicated)."""
    target, (h0, h1, h2) = mock_router
    target.sh(f"iptables -t mangle -A PREROUTING -p udp -j TEE --gateway {h2.ip}")
    target.sh(f"iptables -t mangle -A POSTROUTING -p udp -j TEE --gateway {h2.ip}")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=7, ttl=63, flags="DF") / UDP(sport=1, dport=2))
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=7, ttl=63, flags="DF") / UDP(sport=1, dport=2))
    target.expect_nothing()
    journey = target.journeys()[-1]
    assert [str(child.packet) for child in journey.children] == [f"nf_dup_ipv4 to {h2.ip}", f"nf_dup_ipv4 to {h2.ip}"]


def test_tee_oif_constrains_the_route_only_while_the_device_exists(mock_router):
    """tee_tg4(): priv->oif, the index of the device named --oif, -1 (any
    route) while there is none: the copy goes by its gateway's route."""
    target, (h0, h1, h2) = mock_router
    target.sh(f"iptables -t mangle -A PREROUTING -p udp -j TEE --gateway {h2.ip} --oif nosuchdev")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=7, ttl=63, flags="DF") / UDP(sport=1, dport=2))


def test_tproxy_drops_what_it_takes_and_says_so_in_the_journey(mock_router):
    target, (h0, h1, _) = mock_router
    target.sh("iptables -t mangle -A PREROUTING -p tcp -j TPROXY --on-port 8080")
    target.send(h0.port, h0.to_dut(dst=h1.ip) / TCP(sport=1, dport=80, flags="S"))
    target.expect_nothing()
    hops = [(hop.verdict, str(hop.summary)) for hop in target.journeys()[-1].hops if hop.stage == "NF_PREROUTING"]
    assert hops[-2:] == [("TPROXY", "no transparent socket for port 8080"),
                         ("DROP", "rule 2: meta l4proto tcp counter xt target TPROXY")]
    assert [str(drop.reason) for drop in target.drops()][-1:] == ["NETFILTER_DROP"]


def test_connsecmark_saves_a_packets_secmark_and_restores_it_to_the_next(mock_router):
    """secmark_save(): a packet's secmark to a connection without one;
    secmark_restore(): the connection's to a packet without one. The mock
    has no LSM to label packets: the first packet's secmark is set by hand."""
    k = Kernel()
    sh(k, ["iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "CONNSECMARK", "--save"])
    sh(k, ["iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "CONNSECMARK", "--restore"])
    flow = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=1, dport=2)
    first, second = packet(k, flow), packet(k, flow)
    first.secmark = 7
    assert hook(k, first, NF_INET_PRE_ROUTING) == hook(k, first, NF_INET_LOCAL_IN) == NF_ACCEPT  # confirmed
    assert hook(k, second, NF_INET_PRE_ROUTING) == NF_ACCEPT
    assert (first.nfct.secmark, second.secmark) == (7, 7)
    assert [(hop.verdict, hop.summary) for hop in second.journey.hops if hop.verdict == "CONNSECMARK"] == [
        ("CONNSECMARK", "save: packet secmark 0, connection 7"),
        ("CONNSECMARK", "restore: packet secmark 7, connection 7")]
