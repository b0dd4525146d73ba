"""nf_tables' datapath (net/netfilter/nf_tables_core.c, nft_chain_filter.c,
nft_chain_route.c): compiled chains and nft_do_chain().

`compile_table()` turns a table's chains into `RtChain`s once per commit: each
rule a tuple of closures (nft_exprs). A run of consecutive rules that all
begin with equality matches on a common field (`ip saddr X ...`, `tcp dport
N ...`, `iifname "p0" ...`) is indexed by that field: the packet's value
picks the rules of the run that can match, which then run in their order;
the others would have stopped at that match. This is the mock's own speed-up
(the kernel walks every rule); verdicts, counters and order are unchanged.

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
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_DROP_REASON
from harness.mockkernel.netfilter.nft_exprs import (NFT_BREAK, NFT_CONTINUE, NFT_GOTO, NFT_JUMP, NFT_RETURN,
                                                    VERDICT_NAMES, CompileCtx, Match, NftPktinfo, PrintCtx,
                                                    Verdict, index_key, index_loader)
from harness.mockkernel.wire.ipv4 import ROUTE_FIELDS


class RtRule:
    """A compiled rule; `verdict` is the code of a trailing accept, drop,
    continue or return (None if it has none), given when every expression
    went on, without calling one more closure; `summary` is how a journey hop
    names it ("rule <handle>: <text>"); `dispatch` is set on the first rule
    of an indexed run."""

    __slots__ = ("handle", "exprs", "verdict", "summary", "dispatch")

    def __init__(self, handle: int, exprs: tuple, verdict: int | None, text: str):
        self.handle, self.exprs, self.verdict = handle, exprs, verdict
        self.summary, self.dispatch = f"rule {handle}: {text}", None


class Dispatch:
    """An indexed run of rules: `load(pkt)` gives the key, `table[key]` the
    indexes of the rules that can match, `end` the index after the run."""

    __slots__ = ("load", "table", "end")

    def __init__(self, load, table: dict, end: int):
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
    chain's policy. `pending` holds the rules an index picked, still to run."""
    stack = None  # made at the first jump
    rules, pending, i = chain.rules, (), 0
    while True:
        if pending:
            rule, pending = rules[pending[0]], pending[1:]
        elif i < len(rules):
            rule = rules[i]
            dispatch = rule.dispatch
            if dispatch is not None:
                pending, i = dispatch.table.get(dispatch.load(pkt), ()), dispatch.end
                continue
            i += 1
        elif stack:
            chain, pending, i = stack.pop()
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
                stack.append((chain, pending, i))
            chain, rules, pending, i = pkt.jump, pkt.jump.rules, (), 0
            continue
        if verdict == NFT_RETURN:
            pending, i = (), len(rules)
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
        return Hop(stage, self.chain.id, VERDICT_NAMES.get(verdict, str(verdict)), summary)

    def nft_do_chain_netdev(self, skb, state) -> int:
        if state.in_dev is None or state.in_dev.name not in self.devices:
            return NF_ACCEPT
        return self.run(skb, state)

    def nf_route_table_hook4(self, skb, state) -> int:
        buf, nh = skb.buf, skb.network_header
        before = (ROUTE_FIELDS.unpack_from(buf, nh), skb.mark)
        verdict = self.run(skb, state)
        if verdict == NF_ACCEPT and (ROUTE_FIELDS.unpack_from(buf, nh), skb.mark) != before:
            nf_nat.ip_route_me_harder(skb)
        return verdict


def compile_table(net, table) -> dict[str, RtChain]:
    """Every chain of a table (an nf_tables.NftTable) into RtChains, created
    first since jumps refer to them."""
    runtime = {name: RtChain(name, f"{table.family} {table.name} {name}",
                             NF_DROP if chain.policy == "drop" else NF_ACCEPT, chain.stats)
               for name, chain in table.chains.items()}
    pctx = PrintCtx(stateless=True, family=table.family)
    for name, chain in table.chains.items():
        ctx = CompileCtx(net, table.family, runtime[name].id, runtime)
        rt_rules = [_compile_rule(rule, ctx, pctx) for rule in chain.rules]
        _index(rt_rules, [_leading_keys(rule.stmts) for rule in chain.rules], ctx)
        runtime[name].rules = rt_rules
    return runtime


def _compile_rule(rule, ctx: CompileCtx, pctx: PrintCtx) -> RtRule:
    stmts, verdict = rule.stmts, None
    if stmts and isinstance(stmts[-1], Verdict) and stmts[-1].chain is None:
        stmts, verdict = stmts[:-1], stmts[-1].code
    exprs = tuple(f for f in (s.compile(ctx) for s in stmts) if f is not None)
    return RtRule(rule.handle, exprs, verdict, rule.text(pctx))


def _leading_keys(stmts: list) -> dict:
    """The index keys of a rule's leading matches (before anything with an effect)."""
    keys = {}
    for stmt in stmts:
        if not isinstance(stmt, Match):
            break
        key = index_key(stmt)
        if key is not None:
            keys.setdefault(key[0], key[1])
    return keys


def _index(rules: list[RtRule], keys: list[dict], ctx: CompileCtx) -> None:
    """Index each longest run (of 2 rules or more) sharing a key field, by the
    shared field with the most distinct values."""
    start = 0
    while start < len(rules):
        shared, end = set(keys[start]), start + 1
        while end < len(rules) and shared & keys[end].keys():
            shared &= keys[end].keys()
            end += 1
        if end - start >= 2:
            best = max(sorted(shared, key=repr), key=lambda f: len({keys[i][f] for i in range(start, end)}))
            table: dict = {}
            for i in range(start, end):
                table.setdefault(keys[i][best], []).append(i)
            rules[start].dispatch = Dispatch(index_loader(best, ctx), {k: tuple(v) for k, v in table.items()}, end)
        start = end
