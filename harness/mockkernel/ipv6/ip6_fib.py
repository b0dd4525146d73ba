"""One IPv6 FIB table (net/ipv6/ip6_fib.c): its nodes' route lists,
fib6_add_rt2node()'s placement, the lookup with fib6_backtrack(), and the
dump order of fib6_walk().

The kernel keeps a table in a radix tree (struct fib6_node) keyed by prefix;
each node with routes (RTN_RTINFO) holds a list of fib6_info ordered by metric.
This model keeps those lists in a hash per prefix length and probes the
lengths the table holds, longest first (at most 129 probes, each one dict
lookup in C), which finds the node fib6_node_lookup() finds; when no route of
the node may be used, the walk goes on with the next shorter prefix, as
fib6_backtrack() climbs to the parent. fib6_walk() visits a node's left
subtree, right subtree, then the node (post-order): a more specific prefix
is dumped before the prefix that holds it, disjoint prefixes in address
order; `dump_key()` sorts so.

ECMP (fib6_add_rt2node()): a gateway route joining one of the same prefix
and metric that also has a gateway (rt6_qualify_for_ecmp()) becomes its
sibling, unless the request had NLM_F_EXCL; the group, in the node's order,
is every member's `siblings`, and rt6_multipath_rebalance() gives each
nexthop its upper bound of the 31-bit hash space by weight. Replacing one
member replaces the whole group (the others are purged); a member deleted
leaves the rest rebalanced.

Left out: source-specific routes (CONFIG_IPV6_SUBTREES), route expiry, the
per-route exception table (PMTU and redirect clones), dead nexthops (a
device going down deletes its routes, siblings included: rt6_disable_ip()).
"""
from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.net import RTN_UNICAST, RouteType

ALL_ONES = (1 << 128) - 1
MASKS = tuple((ALL_ONES << (128 - plen)) & ALL_ONES for plen in range(129))
# include/uapi/linux/ipv6_route.h route flags (fib6_flags)
RTF_GATEWAY, RTF_ADDRCONF, RTF_DEFAULT, RTF_NONEXTHOP = 0x0002, 0x00040000, 0x00010000, 0x00200000
RTF_UP, RTF_REJECT, RTF_LOCAL, RTF_ANYCAST = 0x0001, 0x0200, 0x80000000, 0x00100000
# include/uapi/linux/icmpv6.h router preference, as RTA_PREF: iproute2 prints the name
NO_ADDRESS = "0" * 32  # %pi6 of ::
ICMPV6_ROUTER_PREF_LOW, ICMPV6_ROUTER_PREF_MEDIUM, ICMPV6_ROUTER_PREF_HIGH = 0x3, 0x0, 0x1
PREF_NAMES = {ICMPV6_ROUTER_PREF_LOW: "low", ICMPV6_ROUTER_PREF_MEDIUM: "medium", ICMPV6_ROUTER_PREF_HIGH: "high"}


@dataclass(slots=True, eq=False)
class Fib6Info:
    """struct fib6_info with its one fib6_nh: one route in one table.
    `key` is the prefix as an int (dst masked to dst_len), what the table hashes."""

    table: int
    dst: bytes
    dst_len: int
    type: RouteType = RTN_UNICAST
    ifindex: int | None = None  # fib6_nh->fib_nh_dev
    gateway: bytes | None = None  # fib6_nh->fib_nh_gw6
    prefsrc: bytes | None = None
    metric: int = 1024
    protocol: str = "boot"
    mtu: int | None = None  # RTAX_MTU
    flags: int = RTF_UP
    pref: int = ICMPV6_ROUTER_PREF_MEDIUM
    weight: int = 1  # fib6_nh->fib_nh_weight: rtnh_hops + 1
    # the ECMP group this route is a member of, in the node's order (fib6_siblings; None: no siblings)
    siblings: tuple[Fib6Info, ...] | None = field(default=None, repr=False)
    upper_bound: int = 0  # fib6_nh->fib_nh_upper_bound, rt6_upper_bound_set()
    hoplimit: int | None = None  # RTAX_HOPLIMIT
    expires: float | None = None  # RTF_EXPIRES: the clock time it stops being used at (fib6_check_expired())
    key: int = field(init=False)
    # the route received packets on this fib6_info take (rt6_make_pcpu_route()'s dst), while sernum holds
    rt6i_input: object | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.key = int.from_bytes(self.dst, "big") & MASKS[self.dst_len]

    def same_nexthop(self, other: Fib6Info) -> bool:
        """rt6_duplicate_nexthop(): same device and gateway."""
        return self.ifindex == other.ifindex and self.gateway == other.gateway


def rt6_qualify_for_ecmp(f6i: Fib6Info) -> bool:
    """Only gateway routes that router advertisements did not add join an ECMP group."""
    return f6i.gateway is not None and not f6i.flags & RTF_ADDRCONF


def dump_key(f6i: Fib6Info) -> tuple[int, int]:
    """fib6_walk()'s order: the prefix's last address, then the longer prefix first."""
    return f6i.key | (ALL_ONES >> f6i.dst_len if f6i.dst_len < 128 else 0), -f6i.dst_len


Probes = tuple[tuple[int, dict[int, list[Fib6Info]]], ...]


class Fib6Table:
    """struct fib6_table. `leaves[plen][key]` is the route list of the node
    key/plen, in fib6_add_rt2node() order (ascending metric)."""

    def __init__(self, tb6_id: int) -> None:
        self.tb6_id = tb6_id
        self.leaves: dict[int, dict[int, list[Fib6Info]]] = {}
        self.probes: Probes = ()
        self._dump: list[Fib6Info] | None = []

    def __iter__(self) -> Iterator[Fib6Info]:
        """The routes in fib6_walk() order."""
        if self._dump is None:
            self._dump = sorted((f6i for leaves in self.leaves.values() for routes in leaves.values()
                                 for f6i in routes), key=dump_key)
        return iter(list(self._dump))

    def routes(self, key: int, plen: int) -> list[Fib6Info]:
        return self.leaves.get(plen, {}).get(key, [])

    def add(self, f6i: Fib6Info, nlflags: int) -> None:
        """fib6_add_rt2node(): among the routes of the prefix, one of the same
        metric is EEXIST with NLM_F_EXCL; with NLM_F_REPLACE the first of them
        that qualifies for ECMP as the new one does is replaced (with its
        siblings); else the same nexthop is EEXIST and the new route goes after
        those of lower or equal metric, a sibling of the ECMP-qualified ones."""
        routes = self.routes(f6i.key, f6i.dst_len)
        can_ecmp = rt6_qualify_for_ecmp(f6i)
        position = fallback = found = None
        for i, iter_ in enumerate(routes):
            if iter_.metric == f6i.metric:
                if nlflags & NLM_F_EXCL:
                    raise RtnlError(errno.EEXIST)
                if nlflags & NLM_F_REPLACE:
                    if can_ecmp == rt6_qualify_for_ecmp(iter_):
                        found = iter_
                        break
                    fallback = i if fallback is None else fallback
                    continue
                if iter_.same_nexthop(f6i):
                    raise RtnlError(errno.EEXIST)
            elif iter_.metric > f6i.metric:
                position = i
                break
        if found is not None:
            for old in found.siblings or (found,):
                self._unlink(old)
            routes = self.routes(f6i.key, f6i.dst_len)
            position = next((i for i, iter_ in enumerate(routes) if iter_.metric > f6i.metric), len(routes))
        elif nlflags & NLM_F_REPLACE and not nlflags & NLM_F_CREATE:
            raise RtnlError(errno.ENOENT)
        elif fallback is not None:
            position = fallback
        leaves = self.leaves.get(f6i.dst_len)
        if leaves is None:
            leaves = self.leaves[f6i.dst_len] = {}
            self._reprobe()
        routes = leaves.setdefault(f6i.key, [])
        routes.insert(len(routes) if position is None else position, f6i)
        if can_ecmp:
            _link_siblings(routes, f6i.metric)
        self._dump = None

    def delete(self, f6i: Fib6Info) -> None:
        """fib6_del(): this very route leaves its node; its siblings are rebalanced."""
        routes = self._unlink(f6i)
        if f6i.siblings is not None:
            f6i.siblings = None
            _link_siblings(routes, f6i.metric)
        self._dump = None

    def _unlink(self, f6i: Fib6Info) -> list[Fib6Info]:
        routes = self.leaves[f6i.dst_len][f6i.key]
        routes.remove(f6i)
        if not routes:
            leaves = self.leaves[f6i.dst_len]
            del leaves[f6i.key]
            if not leaves:
                del self.leaves[f6i.dst_len]
                self._reprobe()
        return routes

    def flush(self, doomed: Callable[[Fib6Info], bool]) -> bool:
        """fib6_clean_all(): every route `doomed` accepts goes; True if any did."""
        gone = [f6i for f6i in self if doomed(f6i)]
        for f6i in gone:
            self.delete(f6i)
        return bool(gone)

    def _reprobe(self) -> None:
        self.probes = tuple((MASKS[plen], self.leaves[plen]) for plen in sorted(self.leaves, reverse=True))


def _link_siblings(routes: list[Fib6Info], metric: int) -> None:
    """The ECMP group of `metric` in the node's order, each member's
    fib6_siblings; then rt6_multipath_rebalance(): nexthop i's upper bound is
    round(2^31 * (weight of the first i) / total weight) - 1."""
    group = tuple(r for r in routes if r.metric == metric and rt6_qualify_for_ecmp(r))
    total, weight = sum(r.weight for r in group), 0
    for member in group:
        member.siblings = group if len(group) > 1 else None
        weight += member.weight
        member.upper_bound = ((weight << 31) + total // 2) // total - 1


def fib6_new_table(net, table_id: int) -> Fib6Table:
    """fib6_new_table(): the table with that id, made on first use."""
    tables = net.ipv6.fib_tables
    table = tables.get(table_id)
    if table is None:
        table = tables[table_id] = Fib6Table(table_id)
    return table


def ipv6_route_seq_show(net) -> str:
    """/proc/net/ipv6_route (ipv6_route_seq_ops, ipv6_route_native_seq_show()):
    the tables by hash bucket (id mod 256), each in fib6_walk() order, whose
    last node, the root, always shows its leaf: the default routes, else the
    table's fib6_null_entry (metric ffffffff, reject, lo). One line a route
    (a sibling too): destination and length in hex, the source prefix
    (no subtrees: zeros), gateway, metric, refcnt, use (always 0), flags
    (RTF_GATEWAY with a gateway), device. refcnt is fib6_ref, here 1: the
    kernel's also counts the per-CPU dst copies traffic made, which no two
    runs share."""
    lines = []
    for table in sorted(net.ipv6.fib_tables.values(), key=lambda t: t.tb6_id & 0xFF):
        routes = list(table)
        for f6i in routes:
            gateway = f6i.gateway.hex() if f6i.gateway is not None else NO_ADDRESS
            flags = f6i.flags | (RTF_GATEWAY if f6i.gateway is not None else 0)
            lines.append(f"{f6i.dst.hex()} {f6i.dst_len:02x} {NO_ADDRESS} 00 {gateway} {f6i.metric:08x} "
                         f"{1:08x} {0:08x} {flags:08x} {net.devices[f6i.ifindex].name:>8}\n")
        if not any(f6i.dst_len == 0 for f6i in routes):
            lines.append(f"{NO_ADDRESS} 00 {NO_ADDRESS} 00 {NO_ADDRESS} ffffffff {1:08x} {0:08x} "
                         f"{RTF_REJECT | RTF_NONEXTHOP:08x} {'lo':>8}\n")
    return "".join(lines)


def fib6_proc_init(net) -> None:
    net.proc_net["ipv6_route"] = ipv6_route_seq_show
