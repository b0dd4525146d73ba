"""nft_xfrm: `ipsec in|out [spnum N] reqid|spi|ip saddr|ip daddr|ip6 saddr|ip6 daddr`
(net/netfilter/nft_xfrm.c; nftables src/xfrm.c xfrm_expr_print(), json.c xfrm_expr_json()).

nft_xfrm_get_eval_in() reads the packet's secpath (the SAs that decrypted it),
nft_xfrm_get_eval_out() the xfrm bundle of its route: with no secpath or no
bundle, or fewer states than `spnum`, the expression breaks the rule. The
mock has no IPsec (no xfrm states or policies): every packet breaks it, as on
a kernel without SAs. nft_xfrm_validate(): `in` at prerouting, input and
forward, `out` at forward, output and postrouting, else EOPNOTSUPP.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector

# key -> (data type, the family word nft prints before it)
XFRM_KEYS = {("reqid", None): types.integer, ("spi", None): types.integer,
             ("saddr", "ip"): types.ipv4_addr, ("daddr", "ip"): types.ipv4_addr,
             ("saddr", "ip6"): types.ipv6_addr, ("daddr", "ip6"): types.ipv6_addr}
XFRM_HOOKS = {"in": ("prerouting", "input", "forward"), "out": ("forward", "output", "postrouting")}


class Xfrm(Selector):
    def __init__(self, direction: str, spnum: int, key: str, family: str | None):
        self.direction, self.spnum, self.key, self.family = direction, spnum, key, family
        self.dtype = XFRM_KEYS[(key, family)]

    def text(self, pctx: PrintCtx) -> str:
        spnum = f" spnum {self.spnum}" if self.spnum else ""
        family = f" {self.family}" if self.family else ""
        return f"ipsec {self.direction}{spnum}{family} {self.key}"

    def json(self, pctx: PrintCtx) -> dict:
        out = {"key": self.key}
        if self.family:
            out["family"] = self.family
        out.update(dir=self.direction, spnum=self.spnum)
        return {"ipsec": out}

    def hook_refusal(self, family: str, hook: str) -> str | None:
        if family not in ("ip", "ip6", "inet") or hook not in XFRM_HOOKS[self.direction]:
            return "Operation not supported"
        return None

    def load(self, ctx: CompileCtx):
        return lambda pkt: None  # no secpath, no xfrm bundle: NFT_BREAK
