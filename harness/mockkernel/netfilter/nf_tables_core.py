"""nf_tables' datapath (net/netfilter/nf_tables_core.c, nft_chain_filter.c,
nft_chain_route.c): compiled chains and nft_do_chain().

`compile_table()` turns a table's chains into `RtChain`s once per commit
(`compile_chain()` one chain): each rule a tuple of closures (nft_exprs). A
run of consecutive rules whose leading matches share a field (`ip saddr X`,
`ip saddr 10.0.0.0/8`, `tcp dport 1000-2000`, `tcp dport != 22`, `ip saddr
@set`, `iifname "p0"`, ...) is indexed by that field: the packet's value
picks the rules of the run that can match, which then run in their order;
the others would have stopped at that match. Equalities index into a dict;
prefixes, ranges, negations and interval sets into the field's values cut
into stretches (nft_set.Segments), each holding the rules that accept it, as
nft_set_rbtree.c keeps intervals and nft_set_pipapo.c precomputes which rules
match each stretch of a field. Consecutive rules that share no field but
each have one are indexed together, each by its own field (FieldsLookup).
A run ends at a rule that may change the packet. This is the mock's own
speed-up (the kernel walks every rule); verdicts, counters, journeys and
order are unchanged.

nft_do_chain() runs a chain's rules in order with a jump stack: jump pushes,
goto does not, return or the end of a regular chain pops, the end of a base
chain applies its policy. `BaseChainHook` is what a base chain registers:
nft_do_chain_ipv4() / _inet() / _netdev() (a netdev chain only for its
devices), and for `type route` output chains nf_route_table_hook4()'s
re-route when addresses, mark or TOS changed. Each base chain traversal adds
one journey hop (`"<family> <table> <chain>"`, the verdict, and `rule
<handle>: <rule>` or `policy`), a jump or goto one more; a drop frees the
packet in nft_do_chain() with NF_DROP_REASON(NETFILTER_DROP, EPERM) and
returns NF_STOLEN, as the kernel does. A policy
verdict counts in the base chain's stats when it has them.
"""
from __future__ import annotations

from errno import EPERM

from harness.dropreason import DropReason
from harness.journey import Hop
from harness.mockkernel.netfilter import nf_nat
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_DROP_REASON, NF_NETDEV_INGRESS, NF_VERDICT_MASK
from harness.mockkernel.netfilter.nft_exprs import (NFT_BREAK, NFT_CONTINUE, NFT_GOTO, NFT_JUMP, NFT_RETURN,
                                                    VERDICT_NAMES, CompileCtx, Match, NftPktinfo, PrintCtx,
                                                    IndexKeys, Verdict, index_key, index_loader)
from harness.mockkernel.netfilter.nft_set import Segments
from harness.mockkernel.wire.ipv4 import ROUTE_FIELDS


class RtRule:
    """A compiled rule; `verdict` is the code of a trailing accept, drop,
    continue or return (None if it has none), given when every expression
    went on, without calling one more closure; `summary` is how a journey hop
    names it ("rule <handle>: <text>"); `dispatch` is set on the first rule
    of an indexed run. `index_keys` (field -> IndexKeys of its leading
    matches) and `changes_packet` (a statement may change the packet) are
    what indexing a chain reads of it."""

    __slots__ = ("handle", "exprs", "verdict", "summary", "dispatch", "index_keys", "changes_packet")

    def __init__(self, handle: int, exprs: tuple, verdict: int | None, text: str, index_keys: dict,
                 changes_packet: bool):
        self.handle, self.exprs, self.verdict = handle, exprs, verdict
        self.summary, self.dispatch = f"rule {handle}: {text}", None
        self.index_keys, self.changes_packet = index_keys, changes_packet


class Dispatch:
    """An indexed run of rules: `load(pkt)` gives the key, `table.get(key)`
    the rules of the run that can match, in their order (None: none can),
    `end` the index after the run. The table is a dict when every rule
    accepts a few values of the field, else a Segments."""

    __slots__ = ("load", "table", "end")

    def __init__(self, load, table, end: int):
        self.load, self.table, self.end = load, table, end


class RtChain:
    """A compiled chain: what nft_do_chain() walks. `stats` is the base
    chain's counter of policy verdicts, if it was made with one."""

    __slots__ = ("name", "id", "rules", "policy", "stats")

    def __init__(self, name: str, chain_id: str, policy: int, stats=None):
        self.name, self.id, self.policy, self.stats = name, chain_id, policy, stats
        self.rules: list[RtRule] = []


def nft_do_chain(pkt: NftPktinfo, chain: RtChain):
    """Returns (verdict, rule, chain of that rule); verdict None: the base
    chain's policy. `picked` iterates over the rules an index picked, still to run."""
    stack = None  # made at the first jump
    rules, picked, i = chain.rules, None, 0
    while True:
        if picked is not None:
            rule = next(picked, None)
            if rule is None:
                picked = None
                continue
        elif i < len(rules):
            rule = rules[i]
            dispatch = rule.dispatch
            if dispatch is not None:
                candidates = dispatch.table.get(dispatch.load(pkt))
                if candidates is not None:
                    picked = iter(candidates)
                i = dispatch.end
                continue
            i += 1
        elif stack:
            chain, picked, i = stack.pop()
            rules = chain.rules
            continue
        else:
            return None, None, chain
        for expr in rule.exprs:
            verdict = expr(pkt)
            if verdict is not None:
                break
        else:
            verdict = rule.verdict
            if verdict is None:
                continue
        if verdict == NFT_BREAK or verdict == NFT_CONTINUE:
            continue
        if verdict == NFT_JUMP or verdict == NFT_GOTO:
            skb = pkt.skb
            skb.net.tracer.hop(skb, pkt.state.stage, chain.id, VERDICT_NAMES[verdict], rule.summary)
            if verdict == NFT_JUMP:
                if stack is None:
                    stack = []
                stack.append((chain, picked, i))
            chain, rules, picked, i = pkt.jump, pkt.jump.rules, None, 0
            continue
        if verdict == NFT_RETURN:
            picked, i = None, len(rules)
            continue
        return verdict, rule, chain


class BaseChainHook:
    """What a base chain registers: `hookfn(skb, state)`, chosen once as the
    kernel's chain types choose theirs: nft_do_chain_ipv4() and _inet()
    (`run`), nft_do_chain_netdev() for a chain with devices, and
    nf_route_table_hook4() for a route chain (output only). Each commit
    gives it a new chain (`set_chain`). `hops` keeps the journey hop of each
    (rule, verdict, stage) seen: packets ending the same way share one."""

    def __init__(self, chain: RtChain, chain_type: str, devices: list[str]):
        self.devices = devices
        self.set_chain(chain)
        if devices:
            self.hookfn = self.nft_do_chain_netdev
        elif chain_type == "route":
            self.hookfn = self.nf_route_table_hook4
        else:
            self.hookfn = self.run

    def set_chain(self, chain: RtChain) -> None:
        self.chain = chain
        self.hops: dict[tuple, Hop] = {}

    def run(self, skb, state) -> int:
        chain = self.chain
        verdict, rule, where = nft_do_chain(NftPktinfo(skb, state), chain)
        if verdict is None:
            verdict = chain.policy
            stats = chain.stats
            if stats is not None:
                stats.packets += 1
                stats.bytes += skb.tail - skb.network_header
        hop = self.hops.get((rule, verdict, state.stage))
        if hop is None:
            hop = self.hops[rule, verdict, state.stage] = self._hop(rule, verdict, where, state.stage)
        skb.net.tracer.add(skb, hop)
        if verdict == NF_DROP:
            return NF_DROP_REASON(skb, state, DropReason.NETFILTER_DROP, EPERM, "nft_do_chain")
        return verdict

    def _hop(self, rule: RtRule | None, verdict: int, where: RtChain, stage: str) -> Hop:
        if rule is None:
            summary = "policy"
        elif where is self.chain:
            summary = rule.summary
        else:
            summary = f"chain {where.name} {rule.summary}"
        code = verdict & NF_VERDICT_MASK  # NF_QUEUE carries its queue number above the code
        return Hop(stage, self.chain.id, VERDICT_NAMES.get(code, str(verdict)), summary)

    def nft_do_chain_netdev(self, skb, state) -> int:
        """A netdev chain runs for its own devices: the receiving one at
        ingress, the transmitting one at egress (the kernel hooks each device)."""
        dev = state.in_dev if state.hook == NF_NETDEV_INGRESS else state.out_dev
        if dev is None or dev.name not in self.devices:
            return NF_ACCEPT
        return self.run(skb, state)

    def nf_route_table_hook4(self, skb, state) -> int:
        buf, nh = skb.buf, skb.network_header
        before = (ROUTE_FIELDS.unpack_from(buf, nh), skb.mark)
        verdict = self.run(skb, state)
        if verdict == NF_ACCEPT and (ROUTE_FIELDS.unpack_from(buf, nh), skb.mark) != before \
                and nf_nat.ip_route_me_harder(skb):
            return NF_DROP  # NF_DROP_ERR(): no route for what the chain changed
        return verdict


def compile_table(net, table) -> dict[str, RtChain]:
    """Every chain of a table (an nf_tables.NftTable) into RtChains, created
    first since jumps refer to them."""
    runtime = {name: new_rt_chain(table, name) for name in table.chains}
    for chain in table.chains.values():
        compile_chain(net, table, chain, runtime)
    return runtime


def new_rt_chain(table, name: str) -> RtChain:
    """The empty RtChain of a table's chain, for compile_chain() to fill."""
    return RtChain(name, f"{table.family} {table.name} {name}", NF_ACCEPT)


def compile_chain(net, table, chain, runtime: dict[str, RtChain], compiled: dict | None = None) -> RtChain:
    """One chain of a table (an nf_tables.NftChain) into its RtChain of
    `runtime` (the table's, by name), in place: the chains that jump to it
    keep pointing at it. Named sets are read now, as lookups are made at
    commit: a chain whose rules look up a set that changed is compiled
    again. `compiled` (rule handle -> RtRule), if given, holds rules compiled
    before, taken as they are, and gets the rules compiled now: the caller
    drops a rule from it when the rule, or a set it looks up, changes."""
    rt_chain = runtime[chain.name]
    rt_chain.policy, rt_chain.stats = NF_DROP if chain.policy == "drop" else NF_ACCEPT, chain.stats
    ctx = CompileCtx(net, table.family, rt_chain.id, runtime)
    pctx = PrintCtx(stateless=True, family=table.family)
    if compiled is None:
        compiled = {}
    rules = []
    for rule in chain.rules:
        rt_rule = compiled.get(rule.handle)
        if rt_rule is None:
            rt_rule = compiled[rule.handle] = _compile_rule(rule, ctx, pctx)
        rt_rule.dispatch = None
        rules.append(rt_rule)
    _index(rules, ctx)
    rt_chain.rules = rules
    return rt_chain


def _compile_rule(rule, ctx: CompileCtx, pctx: PrintCtx) -> RtRule:
    stmts, verdict = rule.stmts, None
    if stmts and isinstance(stmts[-1], Verdict) and stmts[-1].chain is None:
        stmts, verdict = stmts[:-1], stmts[-1].code
    exprs = tuple(f for f in (s.compile(ctx) for s in stmts) if f is not None)
    return RtRule(rule.handle, exprs, verdict, rule.text(pctx), _leading_keys(rule.stmts),
                  any(stmt.may_change_packet for stmt in rule.stmts))


def _leading_keys(stmts: list) -> dict:
    """The index keys of a rule's leading matches (before anything with an
    effect): field -> IndexKeys, the first match on each field."""
    keys = {}
    for stmt in stmts:
        if not isinstance(stmt, Match):
            break
        key = index_key(stmt)
        if key is not None:
            keys.setdefault(key[0], key[1])
    return keys


def _index(rules: list[RtRule], ctx: CompileCtx) -> None:
    """Index each longest run (of 2 rules or more) sharing a key field, by the
    shared field with the most distinct sets of values accepted. A run ends
    at a rule that may change the packet: the key loaded before it may not
    be what the rules after it would load. Rules left between such runs
    that each have a key of their own are indexed together by several
    fields (_index_fields)."""
    keys = [rule.index_keys for rule in rules]
    start, loose = 0, []
    while start < len(rules):
        shared, end = set(keys[start]), start + 1
        while end < len(rules) and not rules[end - 1].changes_packet and shared & keys[end].keys():
            shared &= keys[end].keys()
            end += 1
        if end - start >= 2:
            _index_fields(rules, loose, ctx)
            loose = []
            best = max(sorted(shared, key=repr), key=lambda f: len({keys[i][f] for i in range(start, end)}))
            _index_run(rules, start, end, [keys[i][best] for i in range(start, end)], index_loader(best, ctx))
        elif keys[start]:
            loose.append(start)
            if rules[start].changes_packet:
                _index_fields(rules, loose, ctx)
                loose = []
        else:
            _index_fields(rules, loose, ctx)
            loose = []
        start = end
    _index_fields(rules, loose, ctx)


def _index_run(rules: list[RtRule], start: int, end: int, accepted: list[IndexKeys], load) -> None:
    """Index rules[start:end] by the values of one field each accepts; a run
    whose table would list its rules too often is indexed in halves."""
    table = _lookup_table(rules[start:end], accepted)
    if table is not None:
        rules[start].dispatch = Dispatch(load, table, end)
    elif end - start >= 4:
        middle = (start + end) // 2
        _index_run(rules, start, middle, accepted[:middle - start], load)
        _index_run(rules, middle, end, accepted[middle - start:], load)


def _index_fields(rules: list[RtRule], stretch: list[int], ctx: CompileCtx) -> None:
    """Index consecutive rules (positions `stretch`) that share no field, each
    by one of its own: the field of its keys that tells the stretch's rules
    apart best. A packet loads each field once and runs, in rule order, the
    rules whose field's lookup picked them. Only where that saves walking:
    2 rules or more per field."""
    if len(stretch) < 2:
        return
    keys = [rules[i].index_keys for i in stretch]
    distinct: dict = {}
    for rule_keys in keys:
        for index_field, accepted in rule_keys.items():
            distinct.setdefault(index_field, set()).add(accepted)
    by_field: dict = {}
    for order, rule_keys in enumerate(keys):
        index_field = max(sorted(rule_keys, key=repr), key=lambda f: len(distinct[f]))
        by_field.setdefault(index_field, []).append(order)
    if len(by_field) * 2 > len(stretch):
        return
    lookups = []
    for index_field, orders in sorted(by_field.items(), key=lambda item: repr(item[0])):
        table = _lookup_table(orders, [keys[order][index_field] for order in orders])
        if table is None:
            return
        lookups.append((index_loader(index_field, ctx), table))
    start = stretch[0]
    rules[start].dispatch = Dispatch(_whole_packet, FieldsLookup(lookups, rules[start:stretch[-1] + 1]),
                                     stretch[-1] + 1)


def _whole_packet(pkt):
    return pkt


class FieldsLookup:
    """The table of a Dispatch over several fields (its `load` gives the
    packet): `get(pkt)` loads each field, looks it up, and gives the rules
    picked by any, in rule order (None: none)."""

    __slots__ = ("lookups", "rules")

    def __init__(self, lookups: list, rules: list[RtRule]):
        self.lookups, self.rules = lookups, rules

    def get(self, pkt):
        picked: list[int] = []
        for load, table in self.lookups:
            hit = table.get(load(pkt))
            if hit is not None:
                picked += hit
        if not picked:
            return None
        rules = self.rules
        return [rules[order] for order in sorted(picked)]


# An index lists a rule once per stretch of keys it accepts that other rules
# cut: a run of IPv4 prefixes, nested at most 33 deep, stays under this.
MAX_LISTED_PER_RULE = 34


def _lookup_table(items: list, accepted: list[IndexKeys]):
    """items[k] (a rule, or its place) by the values accepted[k] holds: a dict
    of them when every item accepts a few, else Segments of the field's
    values (as nft_set_rbtree keeps intervals; nft_set_pipapo likewise
    precomputes, per field, which rules each stretch of values matches).
    None when Segments would list the items too often."""
    if all(keys.points is not None for keys in accepted):
        table: dict = {}
        for item, keys in zip(items, accepted):
            for value in keys.points:
                table.setdefault(value, []).append(item)
        return {value: tuple(picked) for value, picked in table.items()}
    if any(keys.spans is None for keys in accepted):
        return None
    return _segments(items, accepted)


def _segments(items: list, accepted: list[IndexKeys]) -> Segments | None:
    """The field's values cut where an item's spans start or end, each stretch
    with the items that accept it in order; None over the size bound."""
    opens: dict[int, list[int]] = {}
    closes: dict[int, list[int]] = {}
    for order, keys in enumerate(accepted):
        for low, high in keys.spans:
            opens.setdefault(low, []).append(order)
            closes.setdefault(high + 1, []).append(order)
    bounds = sorted(opens.keys() | closes.keys())
    listed = active = 0
    for bound in bounds:
        active += len(opens.get(bound, ())) - len(closes.get(bound, ()))
        listed += active
    if listed > MAX_LISTED_PER_RULE * len(items):
        return None
    stretches: list[list] = []
    covering: set[int] = set()
    for bound, next_bound in zip(bounds, bounds[1:]):
        covering.difference_update(closes.get(bound, ()))
        covering.update(opens.get(bound, ()))
        if not covering:
            continue
        picked = tuple(items[order] for order in sorted(covering))
        if stretches and stretches[-1][1] == bound - 1 and stretches[-1][2] == picked:
            stretches[-1][1] = next_bound - 1
        else:
            stretches.append([bound, next_bound - 1, picked])
    return Segments(stretches)
