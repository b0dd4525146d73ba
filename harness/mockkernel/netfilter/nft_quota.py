"""nft_quota: `quota [over|until] N UNIT [used M UNIT]` (net/netfilter/nft_quota.c;
nftables src/statement.c quota_stmt_print(), json.c quota_stmt_json()).

nft_quota_do_eval(): every packet adds skb->len (the bytes from the network
header at the inet hooks, from the Ethernet payload at netdev and bridge hooks)
to the consumed bytes, then `nft_overquota()` is consumed > quota (since
"netfilter: nft_quota: match correctly when the quota just depleted"; before
it, >=: the packet that reaches the quota exactly is still under it); the rule
goes on while under the quota (`over`: once past it). The consumed count
grows past the quota: nft_quota_do_dump() reports it capped at the quota.
Left out: the NFT_QUOTA_F_DEPLETED notification (nft monitor).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import EOVERFLOW, NFT_BREAK, CompileCtx, PrintCtx, Stmt, get_rate

S64_MAX = (1 << 63) - 1


class QuotaState:
    """struct nft_quota: the quota, its flag and the bytes consumed (shared by
    the rules of a named quota object, own to a rule's quota statement)."""

    def __init__(self, quota: int, over: bool, consumed: int = 0):
        self.quota, self.over, self.consumed = quota, over, consumed

    def init_error(self) -> str | None:
        """nft_quota_do_init()'s refusals."""
        if self.quota > S64_MAX:
            return EOVERFLOW
        if self.consumed > self.quota:
            return "Invalid argument"
        return None

    def used(self) -> int:
        """nft_quota_do_dump(): the consumed bytes, at most the quota."""
        return min(self.consumed, self.quota)

    def text(self, stateless: bool) -> str:
        rate, unit = get_rate(self.quota)
        out = f"{'over ' if self.over else ''}{rate} {unit}"
        if not stateless and self.used():
            used, used_unit = get_rate(self.used())
            out += f" used {used} {used_unit}"
        return out

    def json(self, stateless: bool) -> dict:
        rate, unit = get_rate(self.quota)
        out = {"val": rate, "val_unit": unit}
        if self.over:
            out["inv"] = True
        if not stateless and self.used():
            used, used_unit = get_rate(self.used())
            out.update(used=used, used_unit=used_unit)
        return out

    def eval(self, skb) -> bool:
        """nft_quota_do_eval(): whether the rule goes on (nft_overquota() ^ inv is a break)."""
        self.consumed += skb.len
        return (self.consumed > self.quota) == self.over


class Quota(Stmt):
    """A rule's own quota (NFT_EXPR_STATEFUL: its count survives only as long as the rule)."""

    def __init__(self, quota: int, over: bool, used: int = 0):
        self.state = QuotaState(quota, over, used)

    def text(self, pctx: PrintCtx) -> str:
        return f"quota {self.state.text(pctx.stateless)}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        return [{"quota": self.state.json(pctx.stateless)}]

    def kernel_refusal(self, family: str) -> str | None:
        return self.state.init_error()

    def compile(self, ctx: CompileCtx):
        state = self.state

        def quota(pkt):
            if not state.eval(pkt.skb):
                return NFT_BREAK
            return None
        return quota


def data_unit_parse(unit: str) -> int | None:
    """datatype.c data_unit_parse(): bytes per unit, None for "Wrong rate
    format" (nft compares the unit's first letters only: `kbytes/second` is kbytes)."""
    for name, factor in (("bytes", 1), ("kbytes", 1024), ("mbytes", 1024 * 1024)):
        if unit.startswith(name):
            return factor
    return None
