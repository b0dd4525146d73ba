"""nft_osf: `osf [ttl loose|skip] name|version` (net/netfilter/nft_osf.c,
nfnetlink_osf.c; nftables src/osf.c osf_expr_print()).

nft_osf_eval(): a TCP SYN's operating system from the fingerprints userspace
loaded into nfnetlink_osf (`nfnl_osf -f pf.os`); a packet that is not TCP or
not a SYN breaks the rule. The mock loads no fingerprints, as a kernel where
none were loaded: nf_osf_find() finds nothing and every SYN is "unknown".
nft_osf_validate(): ip and inet tables, prerouting, input and forward only (EOPNOTSUPP).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector
from harness.mockkernel.wire import tcp

TCP_SYN = 0x02
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
            if pkt.tprot != 6 or pkt.thoff < 0 or pkt.thoff + 20 > pkt.end:
                return None
            if not pkt.buf[pkt.thoff + tcp.FLAGS] & TCP_SYN:
                return None
            return NO_FINGERPRINT
        return osf
