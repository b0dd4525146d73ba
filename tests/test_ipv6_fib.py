"""The IPv6 FIB (harness/mockkernel/ipv6/ip6_fib.py, route.py) against
brute-force references: fib6_walk()'s post-order over an explicit binary
prefix tree for the dump order, and a linear scan for the lookup
(fib6_node_lookup() + rt6_select() + fib6_backtrack())."""
from __future__ import annotations

import errno

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE
from harness.mockkernel.ipv6 import route
from harness.mockkernel.ipv6.ip6_fib import Fib6Info, Fib6Table
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import RouteType
from harness.mockkernel.wire.ipv6 import addr_bytes

UP, DOWN = 2, 3  # p0 up, p1 taken down by the tests


def _addr(top: int) -> bytes:
    """An address whose first 16 bits are `top`: the tests' prefixes live there."""
    return top.to_bytes(2, "big") + bytes(14)


prefixes = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 16)).map(
    lambda t: (_addr(t[0] & ((0xFFFF << (16 - t[1])) & 0xFFFF)), t[1]))
routes = st.builds(lambda prefix, metric, ifindex: Fib6Info(254, prefix[0], prefix[1], ifindex=ifindex,
                                                           metric=metric),
                   prefixes, st.sampled_from([1, 5, 1024]), st.sampled_from([UP, DOWN]))


def _post_order(f6is: list[Fib6Info]) -> list[Fib6Info]:
    """fib6_walk() over a binary tree with one node per bit string: left
    (bit 0) subtree, right subtree, then the node's routes."""
    by_bits: dict[str, list[Fib6Info]] = {}
    for f6i in f6is:
        bits = format(int.from_bytes(f6i.dst, "big"), "0128b")[:f6i.dst_len]
        by_bits.setdefault(bits, []).append(f6i)

    def walk(bits: str) -> list[Fib6Info]:
        if not any(key.startswith(bits) for key in by_bits):
            return []
        return walk(bits + "0") + walk(bits + "1") + by_bits.get(bits, [])
    return walk("")


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(routes, max_size=25))
def test_dump_is_the_post_order_walk_of_the_prefix_tree_with_each_nodes_routes_by_metric(f6is):
    table = Fib6Table(254)
    added = []
    for f6i in f6is:
        try:
            table.add(f6i, NLM_F_CREATE)
        except RtnlError:
            continue
        added.append(f6i)
    by_node = sorted(added, key=lambda r: r.metric)  # stable: equal metrics stay in the order added
    assert list(table) == _post_order(by_node)


def _kernel_with_ipv6() -> Kernel:
    """A DUT with IPv6 on and its FIB emptied of addrconf's routes (link-local, multicast, ::1)."""
    net = Kernel()
    net.sysctl.write("net.ipv6.conf.all.disable_ipv6", "0")
    for table in net.ipv6.fib_tables.values():
        table.flush(lambda f6i: True)
    return net


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(routes, max_size=25), st.integers(0, 0xFFFF), st.sampled_from([0, UP, DOWN]))
def test_lookup_takes_the_longest_prefix_with_a_usable_route_of_lowest_metric(f6is, top, oif):
    """Routes out of the down port are never used; of the longest prefix with
    any usable route, the lowest metric, a route out of `oif` first."""
    net = _kernel_with_ipv6()
    net.devices[DOWN].up = False
    table = net.ipv6.fib_tables[254]
    for f6i in f6is:
        try:
            table.add(f6i, NLM_F_CREATE)
        except RtnlError:
            pass
    daddr = _addr(top)
    usable = [r for r in table
              if r.ifindex == UP and top >> (16 - r.dst_len) == int.from_bytes(r.dst[:2], "big") >> (16 - r.dst_len)]
    got = route.fib6_table_lookup(net, table, int.from_bytes(daddr, "big"), oif, strict=False)
    if not usable:
        assert got is None
        return
    longest = max(r.dst_len for r in usable)
    lowest = min(r.metric for r in usable if r.dst_len == longest)
    assert got.dst_len == longest and got.metric == lowest and got.ifindex == UP


def _cfg(prefix: str, plen: int, **kw) -> route.Fib6Config:
    return route.Fib6Config(addr_bytes(prefix), plen, **kw)


def test_a_strict_destination_takes_only_a_route_out_of_the_flows_device():
    """rt6_need_strict(): link-local and multicast destinations match only
    routes out of the interface of the flow (RT6_LOOKUP_F_IFACE)."""
    net = _kernel_with_ipv6()
    route.ip6_route_add(net, _cfg("fe80::", 64, ifindex=2))
    ll = bytes.fromhex("fe80000000000000000000000000000a")
    assert route.ip6_route_input(net, ll, net.devices[2]).input is route.RT6_FORWARD
    assert route.ip6_route_input(net, ll, net.devices[3]).error == errno.ENETUNREACH


def test_the_local_table_is_looked_up_before_main_and_a_throw_route_moves_on():
    """fib6_rule_lookup() without custom rules: local, then main; -EAGAIN (throw) goes on."""
    net = _kernel_with_ipv6()
    route.ip6_route_add(net, _cfg("2001:db8::", 32, ifindex=2))
    route.ip6_route_add(net, _cfg("2001:db8::1", 128, type=RouteType.RTN_LOCAL, ifindex=2, table=255))
    route.ip6_route_add(net, _cfg("2001:db8:1::", 48, type=RouteType.RTN_THROW))
    rt = route.ip6_route_input(net, bytes.fromhex("20010db8000000000000000000000001"), net.devices[3])
    assert (rt.input, rt.dev.name) == (route.RT6_LOCAL, "lo")
    thrown = route.ip6_route_input(net, bytes.fromhex("20010db8000100000000000000000001"), net.devices[3])
    assert (thrown.input, thrown.error) == (route.RT6_ERROR, errno.ENETUNREACH)


def test_reject_routes_fail_with_ip6_rt_type_to_error():
    net = _kernel_with_ipv6()
    for keyword, prefix, error in (("RTN_BLACKHOLE", "2001:db8:4::", errno.EINVAL),
                                   ("RTN_UNREACHABLE", "2001:db8:5::", errno.EHOSTUNREACH),
                                   ("RTN_PROHIBIT", "2001:db8:6::", errno.EACCES)):
        route.ip6_route_add(net, _cfg(prefix, 64, type=RouteType[keyword]))
        rt = route.ip6_route_output(net, addr_bytes(prefix + "1"))
        assert (rt.input, rt.error, rt.dev.name) == (route.RT6_ERROR, error, "lo")


def test_a_cached_input_route_is_dropped_when_a_device_goes_down():
    """fib6_ifdown(): routes through a device going down are deleted; the
    dst cached for input on them is stale (fib6_sernum moved)."""
    net = _kernel_with_ipv6()
    route.ip6_route_add(net, _cfg("2001:db8::", 32, ifindex=2))
    daddr = bytes.fromhex("20010db8000000000000000000000009")
    assert route.ip6_route_input(net, daddr, net.devices[3]).input is route.RT6_FORWARD
    route.rt6_disable_ip(net, net.devices[2])
    assert route.ip6_route_input(net, daddr, net.devices[3]).error == errno.ENETUNREACH
    assert list(net.ipv6.fib_tables[254]) == []
