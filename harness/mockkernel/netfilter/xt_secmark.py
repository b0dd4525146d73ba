"""-j SECMARK (iptables 1.8.9 extensions/libxt_SECMARK.c; net/netfilter/
xt_SECMARK.c).

secmark_tg_check() takes the mangle and security tables only (EINVAL), then
asks the LSM for the secid of --selctx (checkentry_lsm(),
security_secctx_to_secid()). The mock models no LSM (no SELinux policy):
no context resolves, and the rule is refused ENOENT, "RULE_APPEND failed (No
such file or directory)", as the lab's kernel refuses it. libxt_SECMARK's
own check comes first: --selctx is mandatory.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.xt_matches import kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt
from harness.mockkernel.netfilter.xt_targets import XtTarget


class SecmarkTarget(XtTarget):
    """--selctx CONTEXT."""

    name = "SECMARK"
    OPTIONS = (XtOpt(("--selctx",), mandatory=True),)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        """The context goes to the kernel as given; only the LSM reads it."""

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table not in ("mangle", "security"):
            raise kernel_refusal(chain)
        raise kernel_refusal(chain, "No such file or directory")


SECMARK_TARGETS = {"SECMARK": SecmarkTarget}
