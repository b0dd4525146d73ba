"""-m physdev (iptables 1.8.9 extensions/libxt_physdev.c; net/netfilter/
xt_physdev.c): the bridge ports a bridged packet came in and goes out by, as
br_netfilter (br_netfilter.py) records them in the skb's nf_bridge_info. Sent
by iptables-nft as an xt match (nft_compat); nft 1.0.6 lists it as `xt match
physdev` (libxt_physdev has no xlate()).

Options: [!] --physdev-in NAME[+], [!] --physdev-out NAME[+] (`+`: a prefix),
[!] --physdev-is-in, [!] --physdev-is-out, [!] --physdev-is-bridged; saved in
physdev_save()'s order (is-in, in, is-out, out, is-bridged).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.br_netfilter import nf_bridge_info_get
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error

# include/uapi/linux/netfilter/xt_physdev.h
XT_PHYSDEV_OP_IN, XT_PHYSDEV_OP_OUT, XT_PHYSDEV_OP_BRIDGED = 0x01, 0x02, 0x04
XT_PHYSDEV_OP_ISIN, XT_PHYSDEV_OP_ISOUT = 0x08, 0x10
IFNAMSIZ = 16
BITS = {"--physdev-in": XT_PHYSDEV_OP_IN, "--physdev-out": XT_PHYSDEV_OP_OUT,
        "--physdev-is-in": XT_PHYSDEV_OP_ISIN, "--physdev-is-out": XT_PHYSDEV_OP_ISOUT,
        "--physdev-is-bridged": XT_PHYSDEV_OP_BRIDGED}
SAVE_ORDER = ("--physdev-is-in", "--physdev-in", "--physdev-is-out", "--physdev-out", "--physdev-is-bridged")


def parse_interface(name: str) -> tuple[bytes, bytes]:
    """xtables_parse_interface(): the name and its mask, IFNAMSIZ bytes each;
    a trailing `+` leaves itself and the terminating NUL out of the mask."""
    if len(name.encode()) + 1 > IFNAMSIZ:
        raise usage_error(f"interface name `{name}' must be shorter than IFNAMSIZ ({IFNAMSIZ - 1})")
    raw = name.encode()
    width = len(raw) - 1 if raw.endswith(b"+") else len(raw) + 1 if raw else 0
    return raw.ljust(IFNAMSIZ, b"\0"), (b"\xff" * width).ljust(IFNAMSIZ, b"\0")


def ifname_compare_aligned(name: str, wanted: bytes, mask: bytes) -> bool:
    """include/linux/netfilter/x_tables.h ifname_compare_aligned(), as a
    predicate: the device's name (NUL padded) equals `wanted` under `mask`."""
    raw = name.encode().ljust(IFNAMSIZ, b"\0")
    return all((a ^ b) & m == 0 for a, b, m in zip(raw, wanted, mask))


class PhysdevMatch(XtMatch):
    """physdev_mt() and physdev_mt_check()."""

    name = "physdev"
    OPTIONS = tuple(XtOpt((option,), arg=option in ("--physdev-in", "--physdev-out"), invert=True)
                    for option in SAVE_ORDER)

    def __init__(self) -> None:
        super().__init__()
        self.bitmask = self.invert = 0
        self.names: dict[str, str] = {}  # --physdev-in / --physdev-out -> the name as given
        self.masks: dict[str, tuple[bytes, bytes]] = {}

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if value is not None:
            self.masks[option] = parse_interface(value)
            self.names[option] = value
        self.bitmask |= BITS[option]
        if invert:
            self.invert |= BITS[option]

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error("PHYSDEV: no physdev option specified")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """physdev_mt_check(): --physdev-out and --physdev-is-out only with
        --physdev-is-bridged, except where packets never leave by a bridge
        port unbridged: refused at the LOCAL_OUT hook (nft_compat gives a
        user chain no hook mask)."""
        bridged_only = self.bitmask & XT_PHYSDEV_OP_BRIDGED and not self.invert & XT_PHYSDEV_OP_BRIDGED
        if self.bitmask & (XT_PHYSDEV_OP_OUT | XT_PHYSDEV_OP_ISOUT) and not bridged_only and builtin \
                and chain == "OUTPUT":
            raise kernel_refusal(chain)

    def _options(self) -> str:
        parts = []
        for option in SAVE_ORDER:
            if self.bitmask & BITS[option]:
                bang = "! " if self.invert & BITS[option] else ""
                parts.append(f"{bang}{option}" + (f" {self.names[option]}" if option in self.names else ""))
        return " ".join(parts)

    def save(self) -> str:
        return f"-m physdev {self._options()}"

    def listing(self) -> str:
        return f"PHYSDEV match {self._options()}"

    def stmts(self, rule) -> list[Stmt]:
        bitmask, invert = self.bitmask, self.invert
        in_name, in_mask = self.masks.get("--physdev-in", (b"", b""))
        out_name, out_mask = self.masks.get("--physdev-out", (b"", b""))

        def build(ctx):
            def physdev_mt(pkt) -> bool:
                info = nf_bridge_info_get(pkt.skb)
                if info is None:  # not bridged: matches only where each option given is inverted
                    return bitmask & ~invert == 0
                outdev = info.physoutdev.name if info.physoutdev is not None else None
                if bitmask & XT_PHYSDEV_OP_BRIDGED and (outdev is not None) != (not invert & XT_PHYSDEV_OP_BRIDGED):
                    return False
                indev = info.physindev.name if info.physindev is not None else None
                if bitmask & XT_PHYSDEV_OP_ISIN and (indev is None) != bool(invert & XT_PHYSDEV_OP_ISIN) or \
                        bitmask & XT_PHYSDEV_OP_ISOUT and (outdev is None) != bool(invert & XT_PHYSDEV_OP_ISOUT):
                    return False
                if bitmask & XT_PHYSDEV_OP_IN and indev is not None and \
                        ifname_compare_aligned(indev, in_name, in_mask) == bool(invert & XT_PHYSDEV_OP_IN):
                    return False
                if not bitmask & XT_PHYSDEV_OP_OUT:
                    return True
                if outdev is None:
                    return False
                return ifname_compare_aligned(outdev, out_name, out_mask) != bool(invert & XT_PHYSDEV_OP_OUT)
            return physdev_mt
        return [XtCompat("match", "physdev", None, build)]


PHYSDEV_MATCHES = {"physdev": PhysdevMatch}
