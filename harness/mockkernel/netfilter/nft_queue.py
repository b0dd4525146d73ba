"""nft_queue (net/netfilter/nft_queue.c): hand the packet to a userspace
queue (NFQUEUE), `queue [flags bypass,fanout] to N[-M]` or a queue number
from an expression (a map, numgen, a hash); nftables src/statement.c
queue_stmt_print(), src/json.c queue_stmt_json(), src/evaluate.c
stmt_evaluate_queue().

nft_queue_eval() gives the verdict NF_QUEUE_NR(queue), with
NF_VERDICT_FLAG_QUEUE_BYPASS for `bypass`; nft_queue_sreg_eval() takes the
queue number from the expression (a map without the packet's key breaks the
rule). nf_hook_slow() passes the verdict to nf_queue() (netfilter/core.py): with
no program bound to the queue, which is always so on the mock, the packet is
freed (NOT_SPECIFIED at nf_queue), or with bypass goes on to the hook's next
entry. Over a range the kernel picks the queue by CPU (`fanout`) or by
nfqueue_hash() with a seed drawn at boot; the mock takes the range's first,
which no outcome can tell apart without a program on the queues.
nft_queue_validate() refuses it (EOPNOTSUPP) outside the ip, ip6, inet and
bridge families and outside their prerouting, input, forward, output and
postrouting hooks (netdev "lacks okfn").

The netns lab's 6.18 has no nft_queue (CONFIG_NFT_QUEUE unset): it refuses
every queue rule with ENOENT ("Could not process rule: No such file or
directory"). The mock models a kernel that has it, as it models netem.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_QUEUE_NR
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, MapExpr, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_json import selector_json

QUEUE_NUM = types.IntegerType("integer", 16, "integer", types.HOST)  # stmt_evaluate_queue(): 16 bits
QUEUE_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
QUEUE_FAMILIES = ("ip", "ip6", "inet", "bridge")


class Queue(Stmt):
    """`queue`: a terminal statement; `num` an inclusive range of queue
    numbers, or `expr` the expression giving one."""

    terminal = True

    def __init__(self, num: tuple[int, int] | None = None, flags: tuple = (), expr=None, loc=None):
        self.num, self.flags, self.expr, self.loc = num, flags, expr, loc

    @property
    def ordered_flags(self) -> list[str]:
        return [f for f in ("bypass", "fanout") if f in self.flags]

    def text(self, pctx: PrintCtx) -> str:
        """src/statement.c queue_stmt_print()."""
        flags = f"flags {','.join(self.ordered_flags)} " if self.flags else ""
        if self.expr is not None:
            target = self.expr.text(pctx)
        else:
            low, high = self.num or (0, 0)
            target = str(low) if low == high else f"{low}-{high}"
        return f"queue {flags}to {target}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        """src/json.c queue_stmt_json(): one flag as a string, two as a list."""
        if self.expr is not None:
            num = selector_json(self.expr, pctx)
        else:
            low, high = self.num or (0, 0)
            num = low if low == high else {"range": [low, high]}
        out: dict = {"num": num}
        flags = self.ordered_flags
        if flags:
            out["flags"] = flags if len(flags) > 1 else flags[0]
        return [{"queue": out}]

    def maps(self) -> list:
        return [self.expr] if isinstance(self.expr, MapExpr) else []

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """nft_queue_validate()."""
        return None if family in QUEUE_FAMILIES and hook in QUEUE_HOOKS else "Operation not supported"

    def compile(self, ctx: CompileCtx):
        bypass = "bypass" in self.flags
        if self.expr is None:
            verdict = NF_QUEUE_NR((self.num or (0, 0))[0], bypass)
            return lambda pkt: verdict  # nft_queue_eval()
        load = self.expr.lookup(ctx) if isinstance(self.expr, MapExpr) else self.expr.load(ctx)

        def nft_queue_sreg_eval(pkt):
            queue = load(pkt)
            if queue is None:
                return NFT_BREAK
            return NF_QUEUE_NR(queue & 0xFFFF, bypass)
        return nft_queue_sreg_eval
