"""nft_flow_offload (net/netfilter/nft_flow_offload.c): `flow add @FT` (nft
1.0.6 lists `flow offload @FT` as `flow add @FT`), which puts a connection
into flowtable FT, whose ingress hook (nf_flow_table_ip.c
nf_flow_offload_ip_hook()) then forwards its packets past the stack.

The kernel this project models (the 6.18 netns lab) is built without
nf_flow_table (CONFIG_NF_FLOW_TABLE unset): nf_tables_newrule() finds no
expression type "flow_offload" and nf_tables_newflowtable() no flowtable
type, both ENOENT ("Could not process rule: No such file or directory"),
whatever the flowtable named. The mock refuses them the same way (the
flowtable commands in nf_tables.py), so neither reaches the datapath.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import PrintCtx, Stmt

ENOENT = "No such file or directory"


class FlowOffload(Stmt):
    def __init__(self, flowtable: str, loc=None):
        self.flowtable, self.loc = flowtable, loc

    def text(self, pctx: PrintCtx) -> str:
        """src/statement.c flow_offload_stmt_print()."""
        return f"flow add @{self.flowtable}"

    def kernel_refusal(self, family: str) -> str | None:
        return ENOENT
