"""The FIB table (harness/mockkernel/ipv4/fib_trie.py) against a brute-force
reference written here: routes kept in one list in dump order (a sorted insert
by key, longer prefix, tos and metric, NLM_F_* placement among equals) and a
lookup that scans every route for the longest usable match. Hypothesis draws
add/append/prepend/replace/change/delete sequences over a small address space
(so prefixes nest and collide) and compares the dump, every error, and the
lookups of addresses in, next to and outside the prefixes."""
from __future__ import annotations

import errno
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.mockkernel.clock import Clock
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.fib_rules import AF_INET
from harness.mockkernel.core.rtnetlink import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.ipv4 import route as fib
from harness.mockkernel.ipv4.af_inet import inet_init
from harness.mockkernel.ipv4.fib_trie import FibTable
from harness.mockkernel.net import (RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_DEFAULT,
                                    RT_TABLE_LOCAL, RT_TABLE_MAIN, FibRoute, FibRule, Net, NetDevice, RouteType)

ADD, APPEND, PREPEND = NLM_F_CREATE | NLM_F_EXCL, NLM_F_CREATE | NLM_F_APPEND, NLM_F_CREATE
REPLACE, CHANGE = NLM_F_CREATE | NLM_F_REPLACE, NLM_F_REPLACE
UP, DOWN = 2, 3  # the ifindexes of an up and a down device
TYPES = (RouteType.RTN_UNICAST, RouteType.RTN_LOCAL, RouteType.RTN_BROADCAST, RouteType.RTN_THROW,
         RouteType.RTN_BLACKHOLE)


def devices() -> dict[int, NetDevice]:
    return {UP: NetDevice("up", UP, "veth", bytes(6), up=True),
            DOWN: NetDevice("down", DOWN, "veth", bytes(6), up=False)}


def mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


@st.composite
def routes(draw) -> FibRoute:
    """A route in 10.0.0.0/8's first few addresses and 0/0..10/8 above them."""
    plen = draw(st.sampled_from((0, 1, 8, 16, 23, 24, 25, 30, 31, 32)))
    addr = draw(st.sampled_from((0x0A000000, 0x0A000001, 0x0A000080, 0x0A0000FF, 0x0A000100, 0x0A010000,
                                 0x8A000000, 0xC0A80101)))
    return FibRoute(RT_TABLE_MAIN, addr & mask(plen), plen, type=draw(st.sampled_from(TYPES)),
                    oif=draw(st.sampled_from((UP, DOWN, None))), metric=draw(st.sampled_from((0, 0, 1, 5))),
                    scope=draw(st.sampled_from((RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST))),
                    gateway=draw(st.sampled_from((None, 0x0A000002))))


OPS = st.lists(st.tuples(st.sampled_from(("add", "append", "prepend", "replace", "change", "del")), routes()),
               max_size=40)


@dataclass
class ReferenceTable:
    """fib_table_insert()/delete()/lookup() written the plain way: one list in
    dump order, every operation a scan."""

    routes: list

    def insert(self, route: FibRoute, flags: int) -> None:
        key = (route.dst, -route.plen, -route.tos, route.metric)
        group = [i for i, r in enumerate(self.routes) if (r.dst, -r.plen, -r.tos, r.metric) == key]
        if not group:
            if not flags & NLM_F_CREATE:
                raise RtnlError(errno.ENOENT)
            after = [i for i, r in enumerate(self.routes) if (r.dst, -r.plen, -r.tos, r.metric) <= key]
            self.routes.insert(after[-1] + 1 if after else 0, route)
            return
        if flags & NLM_F_EXCL:
            raise RtnlError(errno.EEXIST)
        same = [i for i in group if self.routes[i] == route]
        if flags & NLM_F_REPLACE:
            if not same:
                self.routes[group[0]] = route
            elif same[0] != group[0]:
                raise RtnlError(errno.EEXIST)
            return
        if same:
            raise RtnlError(errno.EEXIST)
        self.routes.insert(group[-1] + 1 if flags & NLM_F_APPEND else group[0], route)

    def delete(self, want: FibRoute) -> None:
        for index, r in enumerate(self.routes):
            if (r.dst, r.plen, r.tos) == (want.dst, want.plen, want.tos) and r.oif == want.oif:
                del self.routes[index]
                return
        raise RtnlError(errno.ESRCH)

    def lookup(self, daddr: int, devs: dict[int, NetDevice], oif: int | None, scope: int) -> FibRoute | None:
        """The longest prefix holding `daddr`, then its first usable alias in
        dump order; a throw route found is no route (-EAGAIN)."""
        best = None
        for r in self.routes:
            if daddr & mask(r.plen) != r.dst or r.scope < scope:
                continue
            if r.oif is not None:
                dev = devs.get(r.oif)
                if dev is None or not dev.up:
                    continue
                if oif is not None and r.oif != oif and r.type not in (RouteType.RTN_LOCAL,
                                                                       RouteType.RTN_BROADCAST):
                    continue
            elif oif is not None and r.type is RouteType.RTN_UNICAST:
                continue
            if best is None or r.plen > best.plen:
                best = r
        return None if best is None or best.type is RouteType.RTN_THROW else best


def outcome(action) -> str | None:
    try:
        action()
    except RtnlError as err:
        return errno.errorcode[err.errno]
    return None


def probe_addresses(table: list[FibRoute]) -> set[int]:
    """Each prefix's first and last address and the ones just outside it."""
    addrs = {0, 0xFFFFFFFF, 0x0A000001, 0x0A0000FE}
    for r in table:
        last = r.dst | ~mask(r.plen) & 0xFFFFFFFF
        addrs |= {r.dst, last, (r.dst - 1) & 0xFFFFFFFF, (last + 1) & 0xFFFFFFFF}
    return addrs


@settings(max_examples=300, deadline=None, database=None)
@given(OPS)
def test_add_del_sequences_dump_fail_and_look_up_as_a_linear_table_does(ops):
    table, reference, devs = FibTable(RT_TABLE_MAIN), ReferenceTable([]), devices()
    flags = {"add": ADD, "append": APPEND, "prepend": PREPEND, "replace": REPLACE, "change": CHANGE}
    for op, r in ops:
        if op == "del":
            got = outcome(lambda: table.delete(r.dst, r.plen, r.tos, lambda a: a.oif == r.oif))
            assert got == outcome(lambda: reference.delete(r)), (op, r)
        else:
            got = outcome(lambda: table.insert(r, flags[op]))
            assert got == outcome(lambda: reference.insert(r, flags[op])), (op, r)
        assert list(table) == reference.routes
        assert len(table) == len(reference.routes)
    for addr in probe_addresses(reference.routes):
        for oif in (None, UP, DOWN):
            for scope in (RT_SCOPE_UNIVERSE, RT_SCOPE_LINK):
                assert table.lookup(addr, devs, oif, scope) is reference.lookup(addr, devs, oif, scope), \
                    (hex(addr), oif, scope)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(routes(), max_size=30), st.lists(routes(), max_size=30), st.lists(routes(), max_size=10))
def test_default_rules_look_up_local_and_main_as_one_trie_then_default_passing_over_throw(local, main, default):
    """fib_lookup() without custom rules: local's and main's routes as one trie
    (the longest prefix of either; local's alias first at one prefix), then
    default; a throw route or no route goes on to default, an error type is
    its errno. Against that walk written out over linear tables."""
    net = Net(Clock())
    inet_init(net)
    for dev in devices().values():
        net.add_device(dev)
    references = {}
    for table_id, table_routes in ((RT_TABLE_LOCAL, local), (RT_TABLE_MAIN, main), (RT_TABLE_DEFAULT, default)):
        reference = references[table_id] = ReferenceTable([])
        for r in table_routes:
            r.table = table_id
            if outcome(lambda: reference.insert(r, APPEND)) is None:
                net.tables[table_id].insert(r, APPEND)
    merged = ReferenceTable(references[RT_TABLE_LOCAL].routes + references[RT_TABLE_MAIN].routes)
    errors = {RouteType.RTN_BLACKHOLE: errno.EINVAL}
    for addr in probe_addresses(local + main + default):
        expected = errno.ENETUNREACH
        for reference in (merged, references[RT_TABLE_DEFAULT]):
            hit = reference.lookup(addr, net.devices, None, RT_SCOPE_UNIVERSE)
            if hit is not None:
                expected = errors.get(hit.type, hit)
                break
        got = fib.fib_rules_lookup(net, addr, 0, 1, None, 0, 0)
        assert got is expected or (isinstance(expected, int) and got == expected), hex(addr)


def test_a_main_route_more_specific_than_a_local_one_wins_until_a_rule_is_added():
    """The kernel's merged local/main trie picks the longest prefix of either;
    with a custom rule (fib_unmerge()) the rule walk finds local's first."""
    net = Net(Clock())
    inet_init(net)
    for dev in devices().values():
        net.add_device(dev)
    wide = FibRoute(RT_TABLE_LOCAL, 0x0A000000, 8, type=RouteType.RTN_LOCAL, oif=UP, scope=RT_SCOPE_HOST)
    narrow = FibRoute(RT_TABLE_MAIN, 0x0A010000, 16, oif=UP)
    net.tables[RT_TABLE_LOCAL].insert(wide, ADD)
    net.tables[RT_TABLE_MAIN].insert(narrow, ADD)
    assert fib.fib_rules_lookup(net, 0x0A010203, 0, 1, None, 0, 0) is narrow
    net.rules_ops[AF_INET].rules.insert(1, FibRule(100, RT_TABLE_MAIN, fwmark=7))
    fib.rt_cache_flush(net)
    assert fib.fib_rules_lookup(net, 0x0A010203, 0, 1, None, 0, 0) is wide


def test_a_leaf_emptied_by_a_delete_is_gone_from_lookups_and_dumps():
    table, devs = FibTable(RT_TABLE_MAIN), devices()
    wide, narrow = (FibRoute(RT_TABLE_MAIN, 0x0A000000, 8, oif=UP),
                    FibRoute(RT_TABLE_MAIN, 0x0A000100, 24, oif=UP))
    table.insert(wide, ADD)
    table.insert(narrow, ADD)
    assert table.lookup(0x0A000105, devs) is narrow
    table.delete(0x0A000100, 24, 0, lambda r: True)
    assert table.lookup(0x0A000105, devs) is wide
    assert list(table) == [wide] and len(table) == 1
    assert [mask for mask, _, _ in table.probes] == [0xFF000000]


@pytest.mark.parametrize("flags, expected", [(CHANGE, "ENOENT"), (ADD, None)])
def test_change_of_a_missing_route_is_enoent_and_add_creates_it(flags, expected):
    table = FibTable(RT_TABLE_MAIN)
    assert outcome(lambda: table.insert(FibRoute(RT_TABLE_MAIN, 0x0A000000, 8, oif=UP), flags)) == expected
