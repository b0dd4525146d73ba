"""-m rpfilter, -m osf and -m physdev on the mock (netfilter/xt_rpfilter.py,
xt_osf.py, xt_physdev.py): where the kernel's checkentry refuses them (the
messages iptables-nft 1.8.9 printed for the same rules in a network
namespace of this machine), how they save, and the datapath cases the
cross-target suite (suites/test_iptables_inspect.py) leaves out, each
expectation read from the kernel function named."""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.target import MockTarget
from harness.target import PORTS
from harness.testing import bridge_up, forward

PREFIX = "iptables v1.8.9 (nf_tables): "
EINVAL = " RULE_APPEND failed (Invalid argument): rule in chain "
COUNTED = re.compile(r'^\[(\d+):\d+\] -A \S+ .*-m comment --comment (\S+)')


def counts(target, table: str) -> dict[str, int]:
    return {m.group(2): int(m.group(1)) for line in target.sh(f"iptables-save -c -t {table}").splitlines()
            if (m := COUNTED.match(line))}


@pytest.mark.parametrize("commands, message", [
    (("iptables -t mangle -A INPUT -m rpfilter",), PREFIX + EINVAL + "INPUT"),  # PRE_ROUTING only
    (("iptables -t filter -A INPUT -m rpfilter",), PREFIX + EINVAL + "INPUT"),
    (("iptables -N Y", "iptables -A Y -m rpfilter"), PREFIX + EINVAL + "Y"),  # raw and mangle only, any chain
    (("iptables -t mangle -A PREROUTING -m rpfilter ! --loose",),
     PREFIX + 'rpfilter: option "--loose" cannot be inverted.'),
    (("iptables -A INPUT -m osf --genre linux",), PREFIX + EINVAL + "INPUT"),  # needs -p tcp
    (("iptables -A INPUT ! -p tcp -m osf --genre linux",), PREFIX + EINVAL + "INPUT"),
    (("iptables -A OUTPUT -p tcp -m osf --genre linux",), PREFIX + EINVAL + "OUTPUT"),
    (("iptables -A INPUT -p tcp -m osf --genre linux --ttl 3",),
     PREFIX + 'osf: bad value for option "--ttl", or out of range (0-2).'),
    (("iptables -A INPUT -p tcp -m osf --ttl 1",), PREFIX + 'osf: option "--genre" must be specified'),
    (("ip6tables -A INPUT -p tcp -m osf --genre linux",),
     "ip6tables v1.8.9 (nf_tables): Couldn't load match `osf':No such file or directory"),
    (("iptables -A OUTPUT -m physdev --physdev-out lo",), PREFIX + EINVAL + "OUTPUT"),
    (("iptables -A OUTPUT -m physdev --physdev-is-out ! --physdev-is-bridged",), PREFIX + EINVAL + "OUTPUT"),
    (("iptables -A INPUT -m physdev",), PREFIX + "PHYSDEV: no physdev option specified"),
    (("iptables -A INPUT -m physdev --physdev-in 0123456789abcdefg",),
     PREFIX + "interface name `0123456789abcdefg' must be shorter than IFNAMSIZ (15)"),
])
def test_refused_as_iptables_and_the_kernel_refuse_it(refusal, commands, message):
    target = MockTarget()
    for command in commands[:-1]:
        target.sh(command)
    assert refusal(target, commands[-1]).splitlines()[0] == message


def test_saved_as_iptables_save_prints_them():
    target = MockTarget()
    for command in ("iptables -t mangle -A PREROUTING -m rpfilter --invert --accept-local --validmark --loose",
                    "iptables -A INPUT -p tcp -m osf ! --genre 'Windows XP' --log 2",
                    "iptables -A INPUT -m physdev ! --physdev-in eth+ ! --physdev-is-in ! --physdev-is-bridged",
                    "iptables -A OUTPUT -m physdev --physdev-out lo --physdev-is-bridged",
                    "iptables -N X", "iptables -A X -m physdev --physdev-out lo"):
        target.sh(command)
    saved = [line for line in target.sh("iptables-save").splitlines() if line.startswith("-A")]
    assert saved == ["-A PREROUTING -m rpfilter --loose --validmark --accept-local --invert",
                     "-A INPUT -p tcp -m osf ! --genre Windows XP --log 2",
                     "-A INPUT -m physdev ! --physdev-is-in ! --physdev-in eth+ ! --physdev-is-bridged",
                     "-A OUTPUT -m physdev --physdev-out lo --physdev-is-bridged",
                     "-A X -m physdev --physdev-out lo"]


def test_nft_lists_rpfilter_as_its_translation_and_the_others_as_xt_matches():
    target = MockTarget()
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter --loose --validmark --accept-local --invert")
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter --accept-local")
    target.sh("iptables -t mangle -A PREROUTING -p tcp -m osf --genre linux")
    listed = target.sh("nft list table ip mangle")
    assert "fib saddr type != local fib saddr . mark oif 0 counter" in listed
    assert "\t\txt match rpfilter counter" in listed
    assert "meta l4proto tcp xt match osf counter" in listed


def test_rpfilter_validmark_looks_up_with_the_packets_mark(mock_router):
    """flowi4_mark is skb->mark with --validmark, else 0: a route back that
    only a fwmark rule gives is found with it alone."""
    target, hosts = mock_router
    h0, h2 = hosts[0], hosts[2]
    target.sh("ip rule add fwmark 7 table 70")
    target.sh(f"ip route add 198.51.100.0/24 dev {h0.port.name} table 70")
    target.sh("iptables -t raw -A PREROUTING -j MARK --set-mark 7")
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter --validmark -m comment --comment validmark")
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter -m comment --comment no-mark")
    forward(target, h0, h2, UDP(sport=1, dport=2), src="198.51.100.7")
    assert counts(target, "mangle") == {"validmark": 1, "no-mark": 0}


def test_rpfilter_accept_local_takes_a_local_route_back_by_the_receiving_device(mock_router):
    """rpfilter_lookup_reverse(): a source that is the DUT's own address has a
    local route back; only --accept-local takes it (then the nexthop's device
    must still be the receiving one)."""
    target, hosts = mock_router
    h0 = hosts[0]
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter -m comment --comment strict")
    target.sh("iptables -t mangle -A PREROUTING -m rpfilter --accept-local -m comment --comment accept-local")
    target.send(h0.port, h0.to_dut(src=h0.dut_ip, dst=hosts[1].ip) / UDP(sport=1, dport=2))
    assert counts(target, "mangle") == {"strict": 0, "accept-local": 1}


def test_osf_counts_nothing_for_a_syn_while_the_tcp_match_does(mock_router):
    target, hosts = mock_router
    target.sh("iptables -A FORWARD -p tcp -m osf --genre Linux --log 0 -m comment --comment osf")
    target.sh("iptables -A FORWARD -p tcp --syn -m comment --comment syn")
    forward(target, hosts[0], hosts[1], TCP(sport=1, dport=80, flags="S"))
    assert counts(target, "filter") == {"osf": 0, "syn": 1}


def test_physdev_in_matches_a_frame_going_up_from_a_bridge_port_in_input():
    """A frame bridged up to the host keeps its nf_bridge_info: INPUT sees its
    input port, and no output port (--physdev-is-bridged fails)."""
    target = MockTarget()
    port_a = PORTS[1]
    bridge_up(target, ports=(port_a.name, PORTS[2].name))
    target.sh("ip link set dev br0 address 02:00:00:00:00:99")
    target.sh("ip addr add 172.17.0.1/16 dev br0")
    target.sh(f"iptables -A INPUT -m physdev --physdev-in {port_a.name} -m comment --comment in-a")
    target.sh("iptables -A INPUT -m physdev --physdev-is-bridged -m comment --comment bridged")
    target.sh("iptables -A INPUT -m physdev --physdev-is-in ! --physdev-is-out -m comment --comment in-not-out")
    target.send(port_a, Ether(src=port_a.peer_mac, dst="02:00:00:00:00:99")
                / IP(src="172.17.0.2", dst="172.17.0.1") / UDP(sport=7, dport=9))
    assert counts(target, "filter") == {"in-a": 1, "bridged": 0, "in-not-out": 1}
