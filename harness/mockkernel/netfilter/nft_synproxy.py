"""nft_synproxy: the `synproxy [mss N] [wscale N] [timestamp] [sack-perm]`
statement and the eval of named synproxy objects (net/netfilter/nft_synproxy.c;
nftables src/statement.c synproxy_stmt_print(), src/json.c
synproxy_stmt_json(), parser_bison.y synproxy_stmt).

nft_synproxy_do_eval(): a packet that is not TCP breaks the rule; a bad TCP
checksum or options cut short drop it; then any SYN is answered by the proxy
and any other ACK checked as a cookie's (nf_synproxy.py), and a segment with
neither goes on to the rule's next statement. nft_synproxy_validate(): input
and forward only (EOPNOTSUPP elsewhere); nft_synproxy_do_init() takes
conntrack and registers the proxy's hooks for the table's families.
The attributes go to the kernel as NFTA_SYNPROXY_MSS (u16) and _WSCALE (u8),
so a larger number is listed cut to that width; nft 1.0.6 lists `mss M wscale
W` whenever either was given (the other as 0), and in JSON only those given.
Left out: synproxy in bridge, netdev and arp tables (said so when written).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_synproxy import (NF_SYNPROXY_OPT_MSS, NF_SYNPROXY_OPT_SACK_PERM,
                                                      NF_SYNPROXY_OPT_TIMESTAMP, NF_SYNPROXY_OPT_WSCALE,
                                                      NfSynproxyInfo, synproxy_eval)
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Stmt
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

SYNPROXY_FAMILIES = ("ip", "ip6", "inet")


def synproxy_flags_text(flags: int) -> str:
    """synproxy_timestamp_to_str() and synproxy_sack_to_str()."""
    return (" timestamp" if flags & NF_SYNPROXY_OPT_TIMESTAMP else "") + \
        (" sack-perm" if flags & NF_SYNPROXY_OPT_SACK_PERM else "")


def nft_synproxy_do_eval(info: NfSynproxyInfo):
    """nft_synproxy_do_eval() for one configuration: pkt -> verdict, NFT_BREAK or None."""
    def synproxy(pkt):
        skb = pkt.skb
        if pkt.tprot != IPPROTO_TCP or skb.protocol not in (ETH_P_IP, ETH_P_IPV6):
            return NFT_BREAK
        return synproxy_eval(skb.net, skb, pkt.thoff, info, xt=False)
    return synproxy


class Synproxy(Stmt):
    needs_conntrack = True
    terminal = False
    uses_synproxy = True

    def __init__(self, mss: int = 0, wscale: int = 0, flags: int = 0, loc=None):
        self.mss, self.wscale, self.flags, self.loc = mss & 0xFFFF, wscale & 0xFF, flags, loc

    def text(self, pctx: PrintCtx) -> str:
        """synproxy_stmt_print()."""
        flags = self.flags
        if flags & (NF_SYNPROXY_OPT_MSS | NF_SYNPROXY_OPT_WSCALE):
            return f"synproxy mss {self.mss} wscale {self.wscale}{synproxy_flags_text(flags)}"
        return f"synproxy{synproxy_flags_text(flags)}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        """synproxy_stmt_json(): null when nothing was given."""
        out = {}
        if self.flags & NF_SYNPROXY_OPT_MSS:
            out["mss"] = self.mss
        if self.flags & NF_SYNPROXY_OPT_WSCALE:
            out["wscale"] = self.wscale
        flags = [name for bit, name in ((NF_SYNPROXY_OPT_TIMESTAMP, "timestamp"),
                                        (NF_SYNPROXY_OPT_SACK_PERM, "sack-perm")) if self.flags & bit]
        if flags:
            out["flags"] = flags
        return [{"synproxy": out or None}]

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """nft_synproxy_validate(): input and forward only."""
        return None if hook in ("input", "forward") else "Operation not supported"

    def compile(self, ctx: CompileCtx):
        return nft_synproxy_do_eval(NfSynproxyInfo(self.flags, self.wscale, self.mss))
