"""One IPv4 FIB table (net/ipv4/fib_trie.c): its leaves and their aliases,
fib_table_lookup(), fib_table_insert()/fib_table_delete()'s placement of an
alias, fib_table_flush() and the dump order.

The kernel keys a table's leaves in an LC-trie and walks down it, backtracking
to shorter prefixes when no alias of the longest match may be used. This model
keeps the same leaves (a prefix and its fa_list) in a hash per prefix length and
probes the lengths the table holds, longest first: at most 33 probes, O(prefix
length) as the trie's descent is, and each probe is one dict lookup that runs in
C, where a trie node visited in CPython costs a loop turn and a bit extraction of
interpreted code. The dump order (`ip route show`, the trie walked in key order:
ascending key, a longer prefix before a shorter one of the same key) is sorted
when asked for and kept until a leaf comes or goes.

An alias list is fib_insert_alias()'s order: higher tos first, then lower
priority (metric), then where NLM_F_APPEND (the end of its equals) or neither
flag (their head) put it. The local and main tables stay two tables (each
dumps its own routes); route.py probes them as the kernel's one merged trie
while the rules are the defaults. Left out: route tos in the lookup (the
model's routes all have tos 0), the tnode statistics of /proc/net/fib_triestat.
"""
from __future__ import annotations

import errno
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.net import RTN_BROADCAST, RTN_LOCAL, RTN_THROW, RTN_UNICAST, FibRoute, NetDevice, prefix_mask

MASKS = tuple(prefix_mask(plen) for plen in range(33))


def _alias_order(route: FibRoute) -> tuple[int, int]:
    """fib_insert_alias()'s position in a leaf: higher tos first, then lower priority."""
    return -route.tos, route.metric


Probes = tuple[tuple[int, dict[int, list[FibRoute]], int], ...]


def fib_probe(probes: Probes, daddr: int, devices: dict[int, NetDevice], oif: int | None = None,
              scope: int = 0) -> FibRoute | None:
    """fib_table_lookup() over a probe sequence: (mask, leaves, table
    position) longest first, one table's or the tables of a rule walk in rule
    order. The first usable alias of the longest matching prefix of a table is
    the answer, unless it is a throw route (-EAGAIN: the walk goes on with the
    next table). An alias is passed over when its scope is narrower than the
    lookup's (`fa_scope < flowi4_scope`), its device is gone or down
    (RTNH_F_DEAD), or the lookup names an `oif` it does not go out of (a local
    or broadcast route matches any oif; a unicast route needs a device to
    match one)."""
    for mask, leaves, table_position in probes:
        aliases = leaves.get(daddr & mask)
        if aliases is None:
            continue
        for route in aliases:
            if route.scope < scope:
                continue
            if route.oif is not None:
                dev = devices.get(route.oif)
                if dev is None or not dev.up:
                    continue
                if oif is not None and route.oif != oif and route.type is not RTN_LOCAL \
                        and route.type is not RTN_BROADCAST:
                    continue
            elif oif is not None and route.type is RTN_UNICAST:
                continue
            if route.type is RTN_THROW:
                rest = tuple(probe for probe in probes if probe[2] > table_position)
                return fib_probe(rest, daddr, devices, oif, scope)
            return route
    return None


class FibTable:
    """struct fib_table. `leaves[plen][key]` is the fa_list of the leaf for
    key/plen; `probes` is the table's probe sequence for fib_probe(), and
    `on_reprobe` is called when it changes (a prefix length comes or goes)."""

    def __init__(self, tb_id: int, on_reprobe: Callable[[], None] = lambda: None) -> None:
        self.tb_id = tb_id
        self.on_reprobe = on_reprobe
        self.leaves: dict[int, dict[int, list[FibRoute]]] = {}
        self.probes: Probes = ()
        self.count = 0
        self._dump_keys: list[tuple[int, int]] | None = []

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[FibRoute]:
        """The routes in dump order (fib_table_dump()'s trie walk)."""
        if self._dump_keys is None:
            self._dump_keys = sorted((key, -plen) for plen, leaves in self.leaves.items() for key in leaves)
        for key, negative_plen in list(self._dump_keys):
            aliases = self.leaves.get(-negative_plen, {}).get(key)
            if aliases:
                yield from list(aliases)

    def lookup(self, daddr: int, devices: dict[int, NetDevice], oif: int | None = None,
               scope: int = 0) -> FibRoute | None:
        """fib_table_lookup() in this table alone (fib_probe())."""
        return fib_probe(self.probes, daddr, devices, oif, scope)

    def longest_match(self, addr: int) -> FibRoute | None:
        """The first alias of the longest prefix holding `addr`, whatever its
        device's state (inet_addr_type_table()'s view of the local table)."""
        for mask, leaves, _ in self.probes:
            aliases = leaves.get(addr & mask)
            if aliases:
                return aliases[0]
        return None

    def aliases(self, key: int, plen: int) -> list[FibRoute]:
        """fib_find_node() + its fa_list: the routes of one prefix, in order."""
        return self.leaves.get(plen, {}).get(key, [])

    def insert(self, route: FibRoute, flags: int) -> None:
        """fib_table_insert()'s placement with the NLM_F_* semantics of `ip route
        add` (CREATE|EXCL), `append` (CREATE|APPEND), `prepend` (CREATE),
        `replace` (CREATE|REPLACE) and `change` (REPLACE): among the aliases of
        the same prefix, tos and priority, an equal route is EEXIST unless
        replacing it in place, and a replace takes the first one's place."""
        aliases = self._leaf(route.dst, route.plen, create=bool(flags & NLM_F_CREATE))
        order = _alias_order(route)
        first = bisect_left(aliases, order, key=_alias_order)
        end = bisect_right(aliases, order, lo=first, key=_alias_order)
        if first == end:
            if not flags & NLM_F_CREATE:
                raise RtnlError(errno.ENOENT)
            self._add(aliases, first, route)
            return
        if flags & NLM_F_EXCL:
            raise RtnlError(errno.EEXIST)
        match = next((i for i in range(first, end) if aliases[i] == route), None)
        if flags & NLM_F_REPLACE:
            if match is None:
                aliases[first] = route
            elif match != first:
                raise RtnlError(errno.EEXIST)
            return
        if match is not None:
            raise RtnlError(errno.EEXIST)
        self._add(aliases, end if flags & NLM_F_APPEND else first, route)

    def delete(self, key: int, plen: int, tos: int, matches: Callable[[FibRoute], bool]) -> FibRoute:
        """fib_table_delete(): the first alias of the prefix with that tos that
        `matches` accepts; ESRCH when none does."""
        aliases = self.aliases(key, plen)
        index = next((i for i, r in enumerate(aliases) if r.tos == tos and matches(r)), None)
        if index is None:
            raise RtnlError(errno.ESRCH)
        route = aliases[index]
        self._remove_at(aliases, index)
        return route

    def remove(self, route: FibRoute) -> None:
        """Take out this very route (a flush of what a dump selected)."""
        aliases = self.aliases(route.dst, route.plen)
        self._remove_at(aliases, next(i for i, r in enumerate(aliases) if r is route))

    def flush(self, doomed: Callable[[FibRoute], bool]) -> None:
        """fib_table_flush(): every route `doomed` accepts goes, in one pass."""
        for plen, leaves in list(self.leaves.items()):
            for key, aliases in list(leaves.items()):
                kept = [r for r in aliases if not doomed(r)]
                if len(kept) == len(aliases):
                    continue
                self.count -= len(aliases) - len(kept)
                if kept:
                    aliases[:] = kept
                else:
                    self._drop_leaf(plen, key)

    def _leaf(self, key: int, plen: int, create: bool) -> list[FibRoute]:
        leaves = self.leaves.get(plen)
        if leaves is None:
            if not create:
                return []
            leaves = self.leaves[plen] = {}
            self._reprobe()
        aliases = leaves.get(key)
        if aliases is None:
            if not create:
                return []
            aliases = leaves[key] = []
            self._dump_keys = None
        return aliases

    def _add(self, aliases: list[FibRoute], index: int, route: FibRoute) -> None:
        aliases.insert(index, route)
        self.count += 1

    def _remove_at(self, aliases: list[FibRoute], index: int) -> None:
        route = aliases.pop(index)
        self.count -= 1
        if not aliases:
            self._drop_leaf(route.plen, route.dst)

    def _drop_leaf(self, plen: int, key: int) -> None:
        leaves = self.leaves[plen]
        del leaves[key]
        self._dump_keys = None
        if not leaves:
            del self.leaves[plen]
            self._reprobe()

    def _reprobe(self) -> None:
        self.probes = tuple((MASKS[plen], self.leaves[plen], 0) for plen in sorted(self.leaves, reverse=True))
        self.on_reprobe()
