"""nft_dup_netdev (net/netfilter/nft_dup_netdev.c): `dup to DEV` in netdev
tables; nftables src/statement.c dup_stmt_print(), src/json.c
dup_stmt_json(), src/evaluate.c stmt_evaluate_dup() (in a netdev table the
destination is an interface, and `device` is refused: "cannot specify
device").

nft_dup_netdev_eval(): a clone of the packet goes out of DEV
(nf_dup_netdev_egress(): dev_queue_xmit(), unchanged), the original goes on
through the rule and the chain. DEV may be a map lookup; a key the map lacks
breaks the rule.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nf_dup_netdev import nf_dup_netdev_egress
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, MapExpr, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_fwd_netdev import operand_json, operand_loader, operand_text


class DupNetdev(Stmt):
    def __init__(self, dev, dev_type: types.Datatype, loc=None):
        self.dev, self.dev_type, self.loc = dev, dev_type, loc

    def maps(self) -> list[MapExpr]:
        return [self.dev] if isinstance(self.dev, MapExpr) else []

    def text(self, pctx: PrintCtx) -> str:
        return f"dup to {operand_text(self.dev, self.dev_type, pctx)}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        return [{"dup": {"addr": operand_json(self.dev, self.dev_type, pctx)}}]

    def compile(self, ctx: CompileCtx):
        oif = operand_loader(self.dev, ctx)

        def nft_dup_netdev_eval(pkt):
            ifindex = oif(pkt)
            if ifindex is None:
                return NFT_BREAK
            nf_dup_netdev_egress(pkt.skb, pkt.state, ifindex)
            return None
        return nft_dup_netdev_eval
