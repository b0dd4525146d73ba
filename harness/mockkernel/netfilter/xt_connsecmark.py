"""-j CONNSECMARK, as iptables-nft sends it (nft_compat): libxt_CONNSECMARK.c;
net/netfilter/xt_CONNSECMARK.c connsecmark_tg().

--save: secmark_save(), a packet's security mark copied to its connection
when the packet has one and the connection none; --restore:
secmark_restore(), the connection's copied to a packet that has none.
connsecmark_tg_check(): mangle or security table; it takes a conntrack
reference (nf_ct_netns_get()), so the target turns connection tracking on.
Without an LSM labelling packets (the mock has none: no SECMARK target, and
the lab kernel runs without SELinux policy) every secmark is 0 and neither
copy changes anything.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_conntrack import UNTRACKED
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget


class ConnsecmarkTarget(XtTarget):
    """--save | --restore."""

    name = "CONNSECMARK"
    OPTIONS = (XtOpt(("--save",), arg=False, excl=("--restore",)), XtOpt(("--restore",), arg=False, excl=("--save",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.mode = ""

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        self.mode = option[2:]

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error("CONNSECMARK target: parameter required")

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table not in ("mangle", "security"):
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --{self.mode}"

    def listing(self) -> str:
        return f"CONNSECMARK {self.mode}"

    def stmts(self, rule) -> list[Stmt]:
        save = self.mode == "save"

        mode = self.mode

        def build(ctx):
            where = ctx.chain_id

            def connsecmark_tg(pkt):
                skb = pkt.skb
                ct = skb.nfct
                if ct is None or ct is UNTRACKED:  # nf_ct_get_secmark(): no connection, no secmark to copy
                    return None
                if save:
                    if skb.secmark and not ct.secmark:
                        ct.secmark = skb.secmark
                elif not skb.secmark and ct.secmark:
                    skb.secmark = ct.secmark
                skb.net.tracer.hop(skb, pkt.state.stage, where, "CONNSECMARK",
                                   f"{mode}: packet secmark {skb.secmark}, connection {ct.secmark}")
                return None
            return connsecmark_tg
        return [XtCompat("target", "CONNSECMARK", None, build, needs_conntrack=True, may_change_packet=True)]


CONNSECMARK_TARGETS = {"CONNSECMARK": ConnsecmarkTarget}
