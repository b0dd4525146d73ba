"""nft_queue (net/netfilter/nft_queue.c): hand the packet to a userspace
queue (NFQUEUE), `queue [flags bypass,fanout] to N[-M]` or a queue number
from an expression (a map, numgen, a hash).

The kernel this project models (the 6.18 netns lab, whose modules are
built in) has no nft_queue: nf_tables_newrule() finds no expression type
"queue" and, with no module to load, fails with ENOENT ("Could not process
rule: No such file or directory"), after nft's own checks of the statement
(src/evaluate.c stmt_evaluate_queue()). The mock refuses it the same way, so
no queue statement ever reaches the datapath.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import PrintCtx, Stmt

ENOENT = "No such file or directory"
QUEUE_NUM = types.IntegerType("integer", 16, "integer", types.HOST)  # stmt_evaluate_queue(): 16 bits


class Queue(Stmt):
    """`queue`: a terminal statement; `num` an inclusive range of queue
    numbers, or `expr` the expression giving one."""

    terminal = True

    def __init__(self, num: tuple[int, int] | None = None, flags: tuple = (), expr=None, loc=None):
        self.num, self.flags, self.expr, self.loc = num, flags, expr, loc

    def text(self, pctx: PrintCtx) -> str:
        """src/statement.c queue_stmt_print()."""
        flags = f"flags {','.join(f for f in ('bypass', 'fanout') if f in self.flags)} " if self.flags else ""
        if self.expr is not None:
            target = self.expr.text(pctx)
        else:
            low, high = self.num or (0, 0)
            target = str(low) if low == high else f"{low}-{high}"
        return f"queue {flags}to {target}"

    def maps(self) -> list:
        return [self.expr] if self.expr is not None and hasattr(self.expr, "ref") else []

    def kernel_refusal(self, family: str) -> str | None:
        return ENOENT
