"""nft_numgen: `numgen inc|random mod N [offset N]` (net/netfilter/nft_numgen.c;
nftables src/numgen.c numgen_expr_print(), json.c numgen_expr_json()).

nft_ng_inc_eval(): a counter of the rule's own, 0, 1, ... mod-1, 0, ...
(it starts at mod - 1 and wraps before it is read), plus the offset.
nft_ng_random_eval(): reciprocal_scale(get_random_u32(), mod) + offset; the
mock draws from its own seeded generator, so a run repeats.
"""
from __future__ import annotations

import random

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector
from harness.mockkernel.netfilter.nft_hash import reciprocal_scale


class Numgen(Selector):
    dtype = types.integer

    def __init__(self, mode: str, mod: int, offset: int = 0):
        self.mode, self.mod, self.offset = mode, mod, offset
        self.counter = mod - 1  # nft_ng_inc_init(): atomic_set(priv->counter, priv->modulus - 1)

    def text(self, pctx: PrintCtx) -> str:
        return f"numgen {self.mode} mod {self.mod}" + (f" offset {self.offset}" if self.offset else "")

    def json(self, pctx: PrintCtx) -> dict:
        return {"numgen": {"mode": self.mode, "mod": self.mod, "offset": self.offset}}

    def load(self, ctx: CompileCtx):
        mod, offset = self.mod, self.offset
        if self.mode == "random":
            draw = random.Random(0).getrandbits
            return lambda pkt: reciprocal_scale(draw(32), mod) + offset

        def numgen_inc(pkt):
            self.counter = self.counter + 1 if self.counter + 1 < mod else 0
            return self.counter + offset
        return numgen_inc
