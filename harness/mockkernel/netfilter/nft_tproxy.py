"""nft_tproxy: `tproxy [ip|ip6] to [ADDR][:PORT]` (net/netfilter/nft_tproxy.c,
nf_tproxy_ipv4.c; nftables src/statement.c tproxy_stmt_print(), evaluate.c
stmt_evaluate_tproxy()).

nft_tproxy_eval_v4() looks up the socket established for the packet, else the
listener on ADDR:PORT (the packet's destination for the one not given), and
assigns the packet to it only if it is transparent (IP_TRANSPARENT,
nf_tproxy_sk_is_transparent()); otherwise the rule breaks. The mock's sockets
never set IP_TRANSPARENT, so every packet breaks the rule, as on a kernel
where no proxy opened a transparent socket. nft_tproxy_validate(): prerouting
only (EOPNOTSUPP elsewhere). nft refuses a tproxy without a transport
protocol match before it, and in an inet table an address without `ip` or
`ip6`; it lists the family only in inet tables, an IPv6 address in brackets.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Stmt


class Tproxy(Stmt):
    def __init__(self, family: str | None, addr, port: int | None, loc=None):
        self.family, self.addr, self.port, self.loc = family, addr, port, loc  # addr: a Token until evaluated
        self.table_family = None

    @property
    def addr_type(self):
        return types.ipv6_addr if self.family == "ip6" else types.ipv4_addr

    def text(self, pctx: PrintCtx) -> str:
        family = f" {self.family}" if pctx.family == "inet" and self.family else ""
        out = f"tproxy{family} to"
        if self.addr is not None:
            addr = self.addr_type.format(self.addr)
            out += f" [{addr}]" if self.family == "ip6" else f" {addr}"
        if self.port is not None:
            out += (":" if self.addr is not None else " :") + str(self.port)
        return out

    def json(self, pctx: PrintCtx) -> list[dict]:
        out = {}
        if pctx.family == "inet" and self.family:
            out["family"] = self.family
        if self.addr is not None:
            out["addr"] = self.addr_type.format(self.addr)
        if self.port is not None:
            out["port"] = self.port
        return [{"tproxy": out}]

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        return None if family in ("ip", "ip6", "inet") and hook == "prerouting" else "Operation not supported"

    def compile(self, ctx: CompileCtx):
        return lambda pkt: NFT_BREAK  # no transparent socket to assign the packet to
