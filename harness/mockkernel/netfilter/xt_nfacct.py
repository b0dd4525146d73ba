"""-m nfacct (iptables 1.8.9 extensions/libxt_nfacct.c; net/netfilter/
xt_nfacct.c over nfnetlink_acct).

nfacct_mt_checkentry() looks the accounting object up by name
(nfnl_acct_find_get()) and refuses the rule with ENOENT when there is none:
"RULE_APPEND failed (No such file or directory)". The mock models no
nfnetlink_acct objects (no `nfacct` command makes one), so every rule naming
one is refused so, as on a kernel where none was made. libxt_nfacct's own
checks come first: the name is mandatory, at least one character, and holds
no newline.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error


class NfacctMatch(XtMatch):
    """--nfacct-name NAME."""

    name = "nfacct"
    OPTIONS = (XtOpt(("--nfacct-name",), mandatory=True),)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if not value:  # xtopt_parse_string() with .min = 1
            raise usage_error("Argument must have a minimum length of 1 characters\n")
        if "\n" in value:
            raise usage_error("Newlines not allowed in --nfacct-name")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        raise kernel_refusal(chain, "No such file or directory")


NFACCT_MATCHES = {"nfacct": NfacctMatch}
