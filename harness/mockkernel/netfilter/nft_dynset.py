"""nft_dynset: `add @set { KEY [timeout T] }`, `update @set { ... }`,
`delete @set { KEY }` from the packet path (net/netfilter/nft_dynset.c
nft_dynset_eval(), nft_dynset_init(); nftables src/statement.c set_stmt_print()).

`add` inserts the packet's key unless the set holds it (a live element is
left as it is); `update` inserts it or refreshes its timeout; both break the
rule when the set is full (its `size`). An element's timeout is the
statement's, else the set's (a set with timeouts). `delete` removes the key.
The set's elements are found by key (nft_set.KeyIndex, as nft_rhash_update()
finds them in its rhashtable), and lookups of a set a rule updates read them
as they are now (nft_set.lookup_fn() with `nset.live`). nft_dynset_init()
refuses a set whose backend cannot update (`set->ops->update == NULL`:
EOPNOTSUPP): nft_set_select_ops() gives a set without `flags dynamic` the
bitmap for keys of 2 bytes or fewer, the fast hash for a 4-byte key of known
size, and any interval set the rbtree or pipapo; none of them has an update
operation (and `flags interval, dynamic` is refused when the set is made:
nft_select_set_ops() finds no backend for it).

A meter (`meter NAME [size N] { KEY [timeout T] STMT }`, nftables
src/evaluate.c stmt_evaluate_meter(), statement.c meter_stmt_print()) is an
`update` into a set of its own (NFT_SET_ANONYMOUS | NFT_SET_EVAL, with
NFT_SET_TIMEOUT when the key has a timeout) whose elements carry a stateful
statement (counter, limit, quota, ct count): nft_dynset_new() gives a new
element a clone of the statement (nft_set_elem_expr_clone()), and each
packet runs its element's (nft_set_elem_update_expr()): a limit over its
rate, an exhausted quota or a `ct count` over its count breaks the rule.
Left out: statements inside an `add|update @set { ... }` element.
"""
from __future__ import annotations

import copy
from dataclasses import replace

from harness.mockkernel.netfilter.nft_exprs import (NFT_BREAK, CompileCtx, Concat, PrintCtx, Selector, SetRef,
                                                    Stmt)
from harness.mockkernel.netfilter.nft_json import selector_json, stmt_json
from harness.mockkernel.netfilter.nft_set import Element, KeyIndex, NftSet, format_time, key_index

EOPNOTSUPP = "Operation not supported"


def live_element(index: KeyIndex, key, now: float) -> Element | None:
    """The element of the set holding `key` (nft_rhash_update()'s lookup),
    None if there is none or it has expired (removed then, as if the set's
    gc had reaped it)."""
    found = index.get(key)
    if found is not None and found.expires is not None and now >= found.expires:
        index.remove(found)
        return None
    return found


def dynset_update(nset: NftSet, op: str, key, now: float, stmt_timeout: float | None,
                  template: Stmt | None = None) -> Element | None:
    """nft_dynset_eval() adding or updating: the packet's live element
    (`update` refreshes its timeout), else a new one (nft_dynset_new(), with
    a clone of `template`: nft_set_elem_expr_clone()); None when the set is
    full (the rule breaks)."""
    index = key_index(nset)
    found = live_element(index, key, now)
    timeout = stmt_timeout if stmt_timeout is not None else nset.timeout
    if found is None:
        if nset.size and len(nset.elements) >= nset.size:
            return None
        found = Element(key, timeout=stmt_timeout, expires=now + timeout if timeout else None,
                        exprs=None if template is None else [copy.deepcopy(template)])
        index.append(found)
        nset.version += 1
    elif op == "update" and timeout:
        found.expires = now + timeout
        nset.version += 1
    return found


class Dynset(Stmt):
    """One `add|update|delete @set { key }` statement."""

    may_change_packet = False
    sets_eval_flag = True  # nft's stmt_evaluate_set() adds `flags dynamic` to a set declared in the same batch

    def __init__(self, op: str, key: Selector, ref: SetRef, timeout: float | None = None, loc=None):
        self.op, self.lhs, self.rhs, self.timeout, self.loc = op, key, ref, timeout, loc

    def text(self, pctx: PrintCtx) -> str:
        timeout = f" timeout {format_time(self.timeout)}" if self.timeout is not None else ""
        return f"{self.op} @{self.rhs.name} {{ {self.lhs.text(pctx)}{timeout} }}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        elem = selector_json(self.lhs, pctx)
        if self.timeout is not None:
            elem = {"elem": {"val": elem, "timeout": int(self.timeout)}}
        return [{"set": {"op": self.op, "elem": elem, "set": f"@{self.rhs.name}"}}]

    def kernel_refusal(self, family: str) -> str | None:
        """nft_dynset_init(): the set's backend must have an update operation;
        bound, the set's lookups read what the packet path changes."""
        nset = self.rhs.set
        if nset is None:
            return None
        nset.live = True
        key_bytes = sum((t.size + 7) // 8 for t in nset.key_types)
        if nset.interval or "dynamic" not in nset.flags and (key_bytes <= 2 or key_bytes == 4 and nset.size):
            return EOPNOTSUPP
        if not nset.size:
            nset.size = 0xFFFF  # nft_dynset_init(): an unbounded set gets a size
        return None

    def compile(self, ctx: CompileCtx):
        load, nset, clock, op = self.lhs.load(ctx), self.rhs.set, ctx.net.clock, self.op
        stmt_timeout = self.timeout

        def dynset(pkt):
            key = load(pkt)
            if key is None:
                return NFT_BREAK
            if op != "delete":
                return None if dynset_update(nset, op, key, clock.now, stmt_timeout) is not None else NFT_BREAK
            index = key_index(nset)
            found = live_element(index, key, clock.now)
            if found is not None:
                index.remove(found)
                nset.version += 1
            return None
        return dynset


METER_SIZE = 0xFFFF  # nft_dynset_init(): the size a set of size 0 gets


class Meter(Stmt):
    """One `meter NAME [size N] { KEY [timeout T] STMT }`: nft_dynset's update
    (NFT_DYNSET_OP_UPDATE) of the meter's own set, with STMT per element."""

    may_change_packet = False  # `lhs` is the key: evaluate_rule() puts its protocol dependency in front

    def __init__(self, name: str, size: int, key: Selector, timeout: float | None, stmt: Stmt, loc=None,
                 key_loc=None):
        self.name, self.lhs, self.timeout, self.stmt, self.loc, self.key_loc = name, key, timeout, stmt, loc, key_loc
        key_types = [p.dtype for p in key.parts] if isinstance(key, Concat) else [key.dtype]
        flags = {"dynamic"} | ({"timeout"} if timeout is not None else set())
        self.set = NftSet(name, key_types, flags=flags, size=size or METER_SIZE, meter=True)

    def _key_text(self, pctx: PrintCtx) -> str:
        return self.lhs.text(pctx) + (f" timeout {format_time(self.timeout)}" if self.timeout is not None else "")

    def text(self, pctx: PrintCtx) -> str:
        """meter_stmt_print(): the statement printed stateless."""
        inner = self.stmt.text(replace(pctx, stateless=True))
        return f"meter {self.name} size {self.set.size} {{ {self._key_text(pctx)} {inner} }}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        """meter_stmt_json(): key (an `elem` with its timeout), stmt, size, name."""
        key = selector_json(self.lhs, pctx)
        if self.timeout is not None:
            key = {"elem": {"val": key, "timeout": int(self.timeout)}}
        inner = stmt_json(self.stmt, replace(pctx, stateless=True))
        return [{"meter": {"key": key, "stmt": inner[0], "size": self.set.size, "name": self.name}}]

    def compile(self, ctx: CompileCtx):
        load, nset, clock, timeout, template = self.lhs.load(ctx), self.set, ctx.net.clock, self.timeout, self.stmt
        runs: dict = {}  # key -> (element, its statement compiled)

        def meter(pkt):
            key = load(pkt)
            if key is None:
                return NFT_BREAK
            found = dynset_update(nset, "update", key, clock.now, timeout, template)
            if found is None:
                return NFT_BREAK
            run = runs.get(key)
            if run is None or run[0] is not found:
                run = runs[key] = (found, found.exprs[0].compile(ctx))
            return run[1](pkt)
        return meter
