"""The nf_tables bridge family (its filter chain type, nft_do_chain_bridge()
in net/netfilter/nft_chain_filter.c): base
chains of type filter at the five NFPROTO_BRIDGE hooks, which the bridge runs
with the frame's data at the network header and its MAC header in front
(`ether` and `vlan` fields are loads from it, nft_exprs.link_loader()).

What the lab's kernel refuses when a rule is added, and the mock kernel with
it: the kernel is built without CONFIG_NFT_BRIDGE_META, so `meta ibrname`,
`obrname`, `ibrpvid` and `ibrvproto` are EOPNOTSUPP from nft_meta_get_init()
(in every family: only nft_meta_bridge.c knows them), and without
CONFIG_NF_CONNTRACK_BRIDGE, so a conntrack expression in a bridge table is
EPROTO from nf_ct_netns_do_get() (net/netfilter/nf_conntrack_proto.c: no
nf_ct_bridge_info), and without CONFIG_NFT_BRIDGE_REJECT, so `reject` in a
bridge table, once nft's own checks pass (evaluate.c
stmt_evaluate_reject_bridge()), is ENOENT: nf_tables_newrule() finds no
"reject" expression type for NFPROTO_BRIDGE. `notrack` is no conntrack
lookup and is taken.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import Ct, CtSet, Match, MetaBridge, Reject, Stmt

EOPNOTSUPP = "Operation not supported"
EPROTO = "Protocol error"
ENOENT = "No such file or directory"


def nft_bridge_refusal(stmt: Stmt, family: str) -> str | None:
    """The kernel's error for a statement it will not initialise, or None."""
    lhs = stmt.lhs if isinstance(stmt, Match) else None
    if isinstance(lhs, MetaBridge):
        return EOPNOTSUPP
    if family == "bridge" and (isinstance(lhs, Ct) or isinstance(stmt, CtSet)):
        return EPROTO
    if family == "bridge" and isinstance(stmt, Reject):
        return ENOENT
    return None
