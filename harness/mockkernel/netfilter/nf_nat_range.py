"""struct nf_nat_range2: what a NAT statement asks for (include/uapi/linux/netfilter/nf_nat.h).

Addresses are ints, ports host-order ints; `flags` holds the NF_NAT_RANGE_*
bits by name: "map-ips", "proto-specified", "random", "fully-random",
"persistent", "proto-offset" (NF_NAT_RANGE_PROTO_OFFSET: the port picked
shifted from `base_port`, iptables' DNAT `:A-B/BASE`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NatRange:
    min_addr: int
    max_addr: int
    min_port: int
    max_port: int
    flags: frozenset[str]
    base_port: int = 0
