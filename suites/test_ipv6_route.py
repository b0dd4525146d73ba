"""`ip -6 route` against the IPv6 FIB (net/ipv6/route.c, ip6_fib.c): what
the kernel accepts and how iproute2 prints it, byte for byte."""
from __future__ import annotations

import pytest

from harness.target import CommandError


def _refusal(target, command: str) -> tuple[str, int]:
    with pytest.raises(CommandError) as refused:
        target.sh(command)
    return str(refused.value).split("failed: ", 1)[1].strip(), refused.value.returncode


def test_with_ipv6_off_a_route_out_of_a_port_is_refused_and_reject_routes_go_out_of_lo(target):
    """fib6_nh_init(): a nexthop device with disable_ipv6 (the DUT's default) is
    EACCES; reject routes are promoted to lo before that check (fib6_is_reject())."""
    port = target.ports[0].name
    assert _refusal(target, f"ip -6 route add 2001:db8::/64 dev {port}") == \
        ("Error: IPv6 is disabled on nexthop device.", 2)
    for keyword, prefix in (("blackhole", "2001:db8:4::/64"), ("unreachable", "2001:db8:5::/64"),
                            ("prohibit", "2001:db8:6::/64"), ("throw", "2001:db8:7::/64")):
        target.sh(f"ip -6 route add {keyword} {prefix}")
    target.sh("ip -6 route add blackhole 2001:db8::/32 metric 7")
    target.sh("ip -6 route add blackhole 2001:db8:5::/64 metric 7")
    # fib6_walk(): post-order over the prefix tree, a node's routes by metric
    assert target.sh("ip -6 route show") == (
        "blackhole 2001:db8:4::/64 dev lo metric 1024 pref medium\n"
        "blackhole 2001:db8:5::/64 dev lo metric 7 pref medium\n"
        "unreachable 2001:db8:5::/64 dev lo metric 1024 pref medium\n"
        "prohibit 2001:db8:6::/64 dev lo metric 1024 pref medium\n"
        "throw 2001:db8:7::/64 dev lo metric 1024 pref medium\n"
        "blackhole 2001:db8::/32 dev lo metric 7 pref medium\n")
    assert target.sh("ip -d -6 route show 2001:db8:5::/64") == (
        "blackhole 2001:db8:5::/64 dev lo proto boot scope global metric 7 pref medium\n"
        "unreachable 2001:db8:5::/64 dev lo proto boot scope global metric 1024 pref medium\n")
    assert target.sh("ip -j -6 route show type prohibit") == \
        '[{"type":"prohibit","dst":"2001:db8:6::/64","dev":"lo","metric":1024,"flags":[],"pref":"medium"}]\n'


def test_ipv6_route_requests_fail_as_the_kernel_refuses_them(target):
    port = target.ports[0].name
    target.sh("ip -6 route add blackhole 2001:db8:4::/64")
    assert _refusal(target, "ip -6 route add blackhole 2001:db8:4::/64") == ("RTNETLINK answers: File exists", 2)
    assert _refusal(target, "ip -6 route del 2001:db8:99::/64") == ("RTNETLINK answers: No such process", 2)
    assert _refusal(target, "ip -6 route del 2001:db8:4::/64 table 77") == ("Error: FIB table does not exist.", 2)
    assert _refusal(target, "ip -6 route show table 77") == (
        "Error: ipv6: FIB table does not exist.\nDump terminated", 2)
    assert _refusal(target, "ip -6 route add 2001:db8:a::/64") == ("RTNETLINK answers: No such device", 2)
    assert _refusal(target, f"ip -6 route add 2001:db8:a::/64 via ff02::1 dev {port}") == \
        ("Error: Invalid gateway address.", 2)
    assert _refusal(target, "ip -6 route add 2001:db8:a::/64 via fe80::1") == \
        ("Error: Egress device not specified.", 2)
    assert _refusal(target, f"ip -6 route add 10.0.0.0/8 dev {port}") == \
        ('Error: inet6 prefix is expected rather than "10.0.0.0/8".', 1)
    target.sh("ip -6 route del 2001:db8:4::/64")
    assert target.sh("ip -6 route show") == ""


def test_ip_6_route_get_prints_the_route_and_source_the_kernel_picks(target, hosts6):
    h0 = hosts6[0]
    port = h0.port.name
    target.sh(f"ip -6 route add 2001:db8:20::/64 via {h0.ip6}")
    target.sh("ip -6 route add unreachable 2001:db8:21::/64")
    assert target.sh("ip -6 route get 2001:db8:20::5") == \
        f"2001:db8:20::5 from :: via {h0.ip6} dev {port} src {h0.dut_ip6} metric 1024 pref medium\n"
    assert target.sh(f"ip -6 route get {h0.dut_ip6}") == \
        f"local {h0.dut_ip6} from :: dev lo table local proto kernel src {h0.dut_ip6} metric 0 pref medium\n"
    assert target.sh(f"ip -6 route get fe80::5 oif {port}") == \
        f"fe80::5 from :: dev {port} proto kernel src {h0.dut_ll6} metric 256 pref medium\n"
    assert target.sh(f"ip -6 route get 2001:db8:0::9 iif {port}") == \
        f"2001:db8::9 from :: dev {port} proto kernel metric 256 iif {port} pref medium\n"
    assert _refusal(target, "ip -6 route get 2001:db8:21::1") == ("RTNETLINK answers: No route to host", 2)
    assert _refusal(target, "ip -6 route get 2001:db8:99::1") == ("RTNETLINK answers: Network is unreachable", 2)


def _ipv6_route(target) -> list[str]:
    """/proc/net/ipv6_route, refcnt masked: the kernel's counts the per-CPU copies traffic made."""
    lines = [line.split() for line in target.sh("cat /proc/net/ipv6_route").splitlines()]
    return [" ".join(fields[:6] + ["*"] + fields[7:]) for fields in lines]


def test_proc_net_ipv6_route_walks_tables_by_bucket_each_ending_at_its_root(target, hosts6):
    """ipv6_route_seq_show(): table 300 (bucket 44) before main (254) and local
    (255); each table's walk ends at the root, whose leaf is the default route
    or, without one, fib6_null_entry (metric ffffffff, RTF_REJECT|RTF_NONEXTHOP,
    lo); an ECMP route shows one line a nexthop, with RTF_GATEWAY."""
    h1, h2 = hosts6[1], hosts6[2]
    zeros = "0" * 32
    null_entry = f"{zeros} 00 {zeros} 00 {zeros} ffffffff * 00000000 00200200 lo"
    target.sh("ip -6 route add prohibit 2001:db8:81::/64 table 300")
    target.sh(f"ip -6 route add 2001:db8:99::/64 nexthop via {h1.ip6} nexthop via {h2.ip6} weight 3")
    listed = _ipv6_route(target)
    assert listed[:2] == [f"20010db8008100000000000000000000 40 {zeros} 00 {zeros} 00000400 * 00000000 00200200 lo",
                          null_entry]
    ecmp = [line for line in listed if line.startswith("20010db8009900000000000000000000")]
    assert ecmp == [f"20010db8009900000000000000000000 40 {zeros} 00 20010db8000100000000000000000002 00000400 * "
                    f"00000000 00000003 {h1.port.name}",
                    f"20010db8009900000000000000000000 40 {zeros} 00 20010db8000200000000000000000002 00000400 * "
                    f"00000000 00000003 {h2.port.name}"]
    assert listed.count(null_entry) == 3  # table 300, main, local
    # a default route of its own (table 300: a lab DUT keeps main's) takes the root's leaf
    target.sh(f"ip -6 route add default via {h1.ip6} table 300")
    assert _ipv6_route(target)[:3] == [
        f"20010db8008100000000000000000000 40 {zeros} 00 {zeros} 00000400 * 00000000 00200200 lo",
        f"{zeros} 00 {zeros} 00 20010db8000100000000000000000002 00000400 * 00000000 00000003 {h1.port.name}",
        f"20010db8000000000000000000000000 40 {zeros} 00 {zeros} 00000100 * 00000000 00000001 {hosts6[0].port.name}"]
    assert _ipv6_route(target).count(null_entry) == 2
