"""nfnetlink_osf (net/netfilter/nfnetlink_osf.c): passive OS fingerprinting,
shared by nft's `osf` (nft_osf.py) and iptables' -m osf (xt_osf.py).

The fingerprints are what userspace loads (`nfnl_osf -f pf.os`) into
nf_osf_fingers, one list for the whole kernel (not per namespace). The mock
loads none, as a kernel where none were loaded: nf_osf_find() finds no genre
and nf_osf_match() matches no packet; each still looks at a TCP SYN only.
"""
from __future__ import annotations

from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

TCP_SYN = 0x02
NF_OSF_GENRES: frozenset[str] = frozenset()  # the genres of nf_osf_fingers: none loaded


def nf_osf_hdr_ctx_init(pkt) -> bool:
    """nf_osf_hdr_ctx_init(): a TCP header readable after the IP header, with SYN set."""
    if pkt.tprot != IPPROTO_TCP or pkt.thoff < 0 or pkt.thoff + tcp.TCP_HLEN > pkt.end:
        return False
    return bool(pkt.buf[pkt.thoff + tcp.FLAGS] & TCP_SYN)


def nf_osf_find(pkt) -> str | None:
    """nf_osf_find(): the genre of the first loaded fingerprint the SYN
    matches; with none loaded, None."""
    return next(iter(NF_OSF_GENRES), None) if nf_osf_hdr_ctx_init(pkt) else None


def nf_osf_match(pkt, genre: str, log: bool) -> bool:
    """nf_osf_match(): a SYN that matches a loaded fingerprint of `genre`
    (of any genre with --log); with none loaded, no packet. The kernel reads
    no XT_OSF_INVERT: `! --genre` matches as `--genre` does."""
    return nf_osf_hdr_ctx_init(pkt) and bool(NF_OSF_GENRES if log else genre in NF_OSF_GENRES)
