"""nft_dynset: `add @set { KEY [timeout T] }`, `update @set { ... }`,
`delete @set { KEY }` from the packet path (net/netfilter/nft_dynset.c
nft_dynset_eval(), nft_dynset_init(); nftables src/statement.c set_stmt_print()).

`add` inserts the packet's key unless the set holds it (a live element is
left as it is); `update` inserts it or refreshes its timeout; both break the
rule when the set is full (its `size`). An element's timeout is the
statement's, else the set's (a set with timeouts). `delete` removes the key.
Lookups of a set a rule updates read its elements as they are now
(nft_set.lookup_fn() with `nset.live`). nft_dynset_init() refuses a set
whose backend cannot update (EOPNOTSUPP): nft_set_select_ops() gives a set
without `flags dynamic` the bitmap for keys of 2 bytes or fewer, the fast
hash for a 4-byte key of known size, the rbtree for intervals; none of them
has an update operation. Left out: statements inside the element (`{ ip
saddr counter }`) and meters.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Selector, SetRef, Stmt
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.netfilter.nft_set import Element, format_time

EOPNOTSUPP = "Operation not supported"


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
        if "dynamic" not in nset.flags and (nset.interval or key_bytes <= 2 or key_bytes == 4 and nset.size):
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
            now = clock.now
            found = next((e for e in nset.elements if e.key == key), None)
            if found is not None and found.expires is not None and now >= found.expires:
                nset.elements.remove(found)  # expired: as if gone (the gc would have reaped it)
                found = None
            if op == "delete":
                if found is not None:
                    nset.elements.remove(found)
                    nset.version += 1
                return None
            timeout = stmt_timeout if stmt_timeout is not None else nset.timeout
            if found is None:
                if nset.size and len(nset.elements) >= nset.size:
                    return NFT_BREAK
                nset.elements.append(Element(key, timeout=stmt_timeout,
                                             expires=now + timeout if timeout else None))
                nset.version += 1
            elif op == "update" and timeout:
                found.expires = now + timeout
                nset.version += 1
            return None
        return dynset
