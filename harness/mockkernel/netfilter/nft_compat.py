"""nft_compat (net/netfilter/nft_compat.c): an xtables match or target run
inside an nf_tables rule, as iptables-nft puts the extensions it has no native
expression for. nft_match_eval() calls the match's `match()` and breaks the
rule when it says no; nft_target_eval() calls the target and turns its
verdict into the rule's (XT_CONTINUE goes on). `nft list` shows what nft
1.0.6 shows for them: the extension's translation (libxt_*.c xlate()), or
`xt match NAME` / `xt target NAME` when there is none.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Stmt


class XtCompat(Stmt):
    """One xt extension in a rule. `build(ctx)` makes the kernel function once
    per commit: for a match `f(pkt) -> bool` (xt_match.match), for a target
    `f(pkt) -> None | verdict` (None: XT_CONTINUE). An extension whose kernel
    side is what an nft statement does (SNAT and nft_nat, LOG and nft_log...)
    runs as that statement, `inner`."""

    def __init__(self, kind: str, name: str, translation: str | None, build=None, *, invert: bool = False,
                 terminal: bool = False, needs_conntrack: bool = False, may_change_packet: bool = False,
                 uses_synproxy: bool = False, inner: Stmt | None = None):
        self.kind, self.name, self.translation, self.build, self.invert = kind, name, translation, build, invert
        self.terminal, self.needs_conntrack, self.may_change_packet = terminal, needs_conntrack, may_change_packet
        self.uses_synproxy = uses_synproxy
        self.inner = inner
        if inner is not None:
            self.build = inner.compile
            self.terminal, self.needs_conntrack = inner.terminal, inner.needs_conntrack
            self.may_change_packet = inner.may_change_packet

    def text(self, pctx: PrintCtx) -> str:
        return self.translation if self.translation is not None else f"xt {self.kind} {self.name}"

    def compile(self, ctx: CompileCtx):
        fn = self.build(ctx)
        if self.kind == "target" or self.inner is not None:
            return fn
        invert = self.invert

        def nft_match_eval(pkt):
            return None if fn(pkt) != invert else NFT_BREAK
        return nft_match_eval


class XtHookedTarget(XtCompat):
    """An xt target whose module names the hooks it may run at (xt_target.hooks):
    nft_target_validate() refuses a chain reached from any other hook EINVAL,
    and so a jump to one from there."""

    def __init__(self, name: str, translation: str | None, build, hooks: tuple[str, ...], **flags):
        super().__init__("target", name, translation, build, **flags)
        self.hooks = hooks

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        return None if hook in self.hooks else "Invalid argument"
