"""nft_meta's and nft_rt's keys on the mock (netfilter/nft_meta.py, nft_rt.py),
each test pinned to what nft_meta_get_eval() / nft_rt_get_eval() load and to
how nft 1.0.6 lists them (listings as the real nft printed them, TZ=UTC)."""
from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.clock import REALTIME_AT_BOOT
from harness.mockkernel.target import MockTarget
from harness.target import CommandError
from harness.testing import counted_by_comment, plan_router


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """nft prints and parses time, hour and day in the local zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def router(rules: dict[str, list[str]]) -> tuple[MockTarget, list]:
    """The suites' router plan, an inet table with a counter rule (commented
    with its text, and its hook's name when the rule is in several) per rule."""
    t = MockTarget()
    hosts = plan_router(t)
    chains = "".join(f"chain {hook} {{ type filter hook {hook} priority 0;\n"
                     + "".join(f'{rule} counter comment "{_name(rules, hook, rule)}"\n' for rule in rs) + "}\n"
                     for hook, rs in rules.items())
    t.sh("nft -f -", stdin=f"table inet t {{\n{chains}}}\n")
    return t, hosts


def _name(rules: dict[str, list[str]], hook: str, rule: str) -> str:
    shared = sum(rule in rs for rs in rules.values()) > 1
    return (f"{hook}: " if shared else "") + rule.replace('"', "")


def counted(t) -> set[str]:
    return {name for name, packets in counted_by_comment(t).items() if packets}


def forward_udp(t, hosts, dport: int = 9) -> None:
    h0, h1 = hosts[0], hosts[1]
    t.send(h0.port, h0.to_dut(dst=h1.ip) / UDP(sport=1000, dport=dport))
    t.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63) / UDP(sport=1000, dport=dport))


def test_time_day_and_hour_read_the_wall_clock_the_mock_starts_at_2026_01_01_utc():
    t, hosts = router({"forward": ['meta time > "2022-07-01 11:00:00"', 'meta time < "2022-07-01 11:00:00"',
                                   'meta day "Thursday"', 'meta day "Friday"', 'meta hour "00:00"-"00:59"',
                                   'meta hour "01:00"-"23:59"']})
    assert REALTIME_AT_BOOT == 1767225600.0
    forward_udp(t, hosts)
    assert counted(t) == {'meta time > 2022-07-01 11:00:00', "meta day Thursday", 'meta hour 00:00-00:59'}
    t.wait(86400 + 3600)
    forward_udp(t, hosts)
    assert {name for name, n in counted_by_comment(t).items() if n == 1} == {
        "meta day Thursday", "meta day Friday", "meta hour 00:00-00:59", "meta hour 01:00-23:59"}


def test_time_hour_and_day_list_as_nft_prints_them():
    t = MockTarget()
    t.sh("nft add table ip t")
    t.sh("nft add chain ip t c { type filter hook input priority 0; }")
    for rule in ("meta time 12341234 drop", 'meta hour "17:00:00"', "meta day 6", 'meta hour "17:00"-"18:00"',
                 "meta skuid root", "meta iifgroup 0", "meta rtclassid cosmos", "meta secpath missing"):
        t.sh("nft -f -", stdin=f"add rule ip t c {rule}\n")
    assert t.sh("nft list chain ip t c").splitlines()[3:-2] == [
        '\t\tmeta time "1970-05-23 20:07:14" drop', '\t\tmeta hour "17:00"', '\t\tmeta day "Saturday"',
        '\t\tmeta hour "17:00"-"18:00"', "\t\tmeta skuid 0", '\t\tiifgroup "default"', '\t\tmeta rtclassid "cosmos"',
        "\t\tmeta ipsec missing"]


@pytest.mark.parametrize("rule, message", [
    ("meta day 7", "Error: Value 7 exceeds valid range 0-6"),
    ('meta hour "24:00"', "Error: wrong time format"),
    ('meta time "meh"', "Error: Cannot parse date"),
    ('meta iifname ""', "Error: Empty string is not allowed"),
    ("meta skuid nosuchuser", "Error: User does not exist"),
    ("rt ip6 nexthop fd00::1", "Error: ip6 nexthop will not match"),
])
def test_values_nft_refuses(rule, message):
    t = MockTarget()
    t.sh("nft add table ip t")
    t.sh("nft add chain ip t c { type filter hook output priority 0; }")
    with pytest.raises(CommandError) as info:
        t.sh("nft -f -", stdin=f"add rule ip t c {rule}\n")
    assert message in str(info.value)


def test_device_groups_types_and_kinds_are_the_input_and_output_devices():
    t, hosts = router({"forward": ["iifgroup 5", "oifgroup 5", 'oifgroup "default"', "meta iiftype ether",
                                   "meta oiftype loopback", 'meta iifkind "veth"', 'meta oifkind "veth"']})
    t.sh("ip link set dev p0 group 5")
    forward_udp(t, hosts)
    assert counted(t) == {"iifgroup 5", "oifgroup default", "meta iiftype ether", "meta iifkind veth",
                          "meta oifkind veth"}
    assert "group 5 " in t.sh("ip link show dev p0")


def test_socket_keys_need_a_full_socket_the_mock_s_are_root_s():
    t, hosts = router({"output": ["meta skuid 0", "meta skgid 0", "meta cgroup 0", "meta skuid 1000"],
                       "forward": ["meta skuid 0", "meta skuid != 0"]})
    h1 = hosts[1]
    t.socket("udp", (hosts[1].dut_ip, 5000)).sendto(b"x", (h1.ip, 9))
    forward_udp(t, hosts)
    # forward's packet has no socket: the rule breaks, `!= 0` too
    assert counted(t) == {"output: meta skuid 0", "meta skgid 0", "meta cgroup 0"}


def test_cpu_random_ipsec_sdif_and_rtclassid():
    t, hosts = router({"forward": ["meta cpu 0", "meta cpu != 0", "meta random != 0", "meta ipsec missing",
                                   "meta ipsec exists", 'meta rtclassid "cosmos"', 'meta sdifname != "vrf1"',
                                   "meta sdif 0"],
                       "prerouting": ['meta rtclassid "cosmos"']})
    forward_udp(t, hosts)
    # prerouting: no route yet, the rule breaks
    assert counted(t) == {"meta cpu 0", "meta random != 0", "meta ipsec missing", "forward: meta rtclassid cosmos",
                          "meta sdifname != vrf1", "meta sdif 0"}


def test_rt_nexthop_is_the_gateway_else_the_destination_and_classid_ipsec_need_a_route():
    t, hosts = router({"postrouting": ["rt ip nexthop 10.0.1.2", "rt ip nexthop 10.0.1.99", 'rt classid "cosmos"',
                                       "rt ipsec missing", "rt ip6 nexthop ::1"],
                       "prerouting": ["rt ipsec missing"]})
    h0, h1 = hosts[0], hosts[1]
    t.sh(f"ip route add 192.0.2.0/24 via {h1.ip}")
    forward_udp(t, hosts)
    t.send(h0.port, h0.to_dut(dst="192.0.2.7") / UDP(sport=1000, dport=9))
    t.expect(h1.port, Ether(src=h1.port.mac, dst=h1.mac) / IP(src=h0.ip, dst="192.0.2.7", ttl=63, id=1) /
             UDP(sport=1000, dport=9))
    assert counted_by_comment(t) == {"rt ip nexthop 10.0.1.2": 2, "rt ip nexthop 10.0.1.99": 0,
                                     "rt classid cosmos": 2, "postrouting: rt ipsec missing": 2,
                                     "prerouting: rt ipsec missing": 0, "rt ip6 nexthop ::1": 0}


def test_rt_nexthop_takes_the_rule_s_network_protocol_in_an_inet_table():
    t = MockTarget()
    t.sh("nft add table inet t")
    t.sh("nft add chain inet t c { type filter hook output priority 0; }")
    t.sh("nft add rule inet t c meta nfproto ipv4 rt nexthop 192.168.0.1")
    assert t.sh("nft list chain inet t c").splitlines()[3] == "\t\tmeta nfproto ipv4 rt ip nexthop 192.168.0.1"
    with pytest.raises(CommandError, match="cannot determine ip protocol version"):
        t.sh("nft add rule inet t c rt nexthop 192.168.0.1")


@pytest.mark.parametrize("family, chain, rule, refused", [
    ("ip", "output", "meta sdif 0", True), ("ip", "forward", "meta sdif 0", False),
    ("ip", "output", "meta ipsec exists", True), ("inet", "prerouting", "meta ipsec exists", False),
    ("netdev", "egress", "meta ipsec exists", True), ("netdev", "ingress", "meta ipsec exists", False),
    ("arp", "input", "meta sdifname != \"vrf1\"", True),
])
def test_sdif_and_secpath_are_refused_where_the_kernel_cannot_know_them(family, chain, rule, refused):
    """nft_meta_get_validate(), as 6.18 answered: EOPNOTSUPP."""
    t = MockTarget()
    t.sh(f"nft add table {family} t")
    device = " device p0" if family == "netdev" else ""
    t.sh(f"nft add chain {family} t c {{ type filter hook {chain}{device} priority 0; }}")
    if refused:
        with pytest.raises(CommandError, match="Could not process rule: Operation not supported"):
            t.sh("nft -f -", stdin=f"add rule {family} t c {rule}\n")
    else:
        t.sh("nft -f -", stdin=f"add rule {family} t c {rule}\n")
