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

# The hooks an extension's registration allows it at (struct xt_target / xt_match
# `.hooks`; extensions without one run at every hook). nft_target_validate() and
# nft_match_validate() refuse, EINVAL, the extension in a chain reached from a
# base chain at any other hook (nft_table_validate() walks the jumps), so the rule
# or the jump that makes such a path fails its commit. Read from the modules
# (xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c, xt_TPROXY.c, xt_SYNPROXY.c,
# xt_CLASSIFY.c, xt_owner.c, xt_socket.c, xt_cgroup.c, xt_realm.c, xt_mac.c,
# xt_osf.c, ipt_rpfilter.c/ip6t_rpfilter.c) and pinned on the 6.18 netns lab.
XT_HOOKS = {
    ("target", "DNAT"): ("prerouting", "output"), ("target", "SNAT"): ("postrouting", "input"),
    ("target", "MASQUERADE"): ("postrouting",), ("target", "REDIRECT"): ("prerouting", "output"),
    ("target", "TPROXY"): ("prerouting",), ("target", "SYNPROXY"): ("input", "forward"),
    ("target", "CLASSIFY"): ("output", "forward", "postrouting"),
    ("match", "owner"): ("output", "postrouting"), ("match", "socket"): ("prerouting", "input"),
    ("match", "cgroup"): ("output", "postrouting", "input"),
    ("match", "realm"): ("postrouting", "forward", "output", "input"),
    ("match", "mac"): ("prerouting", "input", "forward"), ("match", "osf"): ("input", "prerouting", "forward"),
    ("match", "rpfilter"): ("prerouting",),
}


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
        self.hooks = XT_HOOKS.get((kind, name))
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

    @property
    def validates(self) -> bool:
        """Only an extension that names its hooks has a check to make."""
        return self.hooks is not None

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """nft_target_validate() / nft_match_validate(): EINVAL at a hook the
        extension's registration leaves out."""
        return None if self.hooks is None or hook in self.hooks else "Invalid argument"
