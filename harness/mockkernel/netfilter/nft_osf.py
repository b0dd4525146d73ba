"""nft_osf: `osf [ttl loose|skip] name|version` (net/netfilter/nft_osf.c,
nfnetlink_osf.c; nftables src/osf.c osf_expr_print()).

nft_osf_eval(): a TCP SYN's operating system from the fingerprints userspace
loaded into nfnetlink_osf (nfnetlink_osf.py, which loads none); a packet that
is not TCP or not a SYN breaks the rule, a SYN nf_osf_find() finds no
fingerprint for is "unknown".
nft_osf_validate(): ip and inet tables, prerouting, input and forward only (EOPNOTSUPP).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nfnetlink_osf import nf_osf_find, nf_osf_hdr_ctx_init
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector

OSF_HOOKS = ("prerouting", "input", "forward")
NO_FINGERPRINT = "unknown"  # what nft_osf_eval() stores when nf_osf_find() matches nothing


class Osf(Selector):
    dtype = types.string_type

    def __init__(self, key: str, ttl: str | None = None):
        self.key, self.ttl = key, ttl  # key: name or version; ttl: None (true), loose, skip

    def text(self, pctx: PrintCtx) -> str:
        return f"osf {f'ttl {self.ttl} ' if self.ttl else ''}{self.key}"

    def json(self, pctx: PrintCtx) -> dict:
        return {"osf": {"key": self.key, **({"ttl": self.ttl} if self.ttl else {})}}

    def hook_refusal(self, family: str, hook: str) -> str | None:
        return None if family in ("ip", "inet") and hook in OSF_HOOKS else "Operation not supported"

    def load(self, ctx: CompileCtx):
        def osf(pkt):
            if not nf_osf_hdr_ctx_init(pkt):
                return None
            return nf_osf_find(pkt) or NO_FINGERPRINT
        return osf
