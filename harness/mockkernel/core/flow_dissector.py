"""The flow hash of a dissected flow (net/core/flow_dissector.c
flow_hash_from_keys_seed() -> __flow_hash_from_keys()), keyed with SipHash-2-4
(lib/siphash.c siphash()), as the multipath route selection uses it
(include/net/ip_fib.h fib_multipath_hash_from_keys()).

struct flow_keys is hashed from its `basic` member (8-byte aligned, offset 8)
to the end of the addresses of its type: for IPv6 72 bytes, laid out as the
kernel's x86-64 build has them:

    basic   n_proto (be16), ip_proto, pad      offset  8
    tags    flow_label (the header's be32)             12
    vlan, cvlan, keyid                                 16..36 (zero here)
    ports   src, dst (be16)                            36
    icmp                                               40 (zero here)
    addrs   v6 src, v6 dst                             44
    padding to the struct's 80 bytes                   76

__flow_hash_consistentify() first orders the addresses and, on their own,
the ports (as the CPU reads the be16 values, little-endian), so both
directions of a flow hash alike; a hash of 0 becomes 1.
"""
from __future__ import annotations

import struct

MASK64 = (1 << 64) - 1
IPV6_KEYS = struct.Struct("2xBx4s20x4s4x16s16s4x")  # the 72 hashed bytes of struct flow_keys, IPv6 addresses


def _rotl(value: int, bits: int) -> int:
    return (value << bits | value >> (64 - bits)) & MASK64


def siphash(data: bytes, k0: int, k1: int) -> int:
    """SipHash-2-4 (lib/siphash.c __siphash_aligned()): 64 bits of `data`
    under the key (k0, k1), the 64-bit halves of siphash_key_t."""
    v0, v1 = 0x736F6D6570736575 ^ k0, 0x646F72616E646F6D ^ k1
    v2, v3 = 0x6C7967656E657261 ^ k0, 0x7465646279746573 ^ k1
    whole = len(data) - len(data) % 8
    last = len(data) << 56 | int.from_bytes(data[whole:], "little")
    for word in [int.from_bytes(data[i:i + 8], "little") for i in range(0, whole, 8)] + [last]:
        v3 ^= word
        for _ in range(2):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= word
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def flow_hash_ipv6(saddr: bytes, daddr: bytes, ip_proto: int, flow_label: int, sport: int, dport: int,
                   k0: int, k1: int) -> int:
    """flow_hash_from_keys_seed() of IPv6 flow keys (n_proto 0, as
    rt6_multipath_hash() leaves it): the low 32 bits of the SipHash."""
    if daddr < saddr:
        saddr, daddr = daddr, saddr
    if _cpu_u16(dport) < _cpu_u16(sport):
        sport, dport = dport, sport
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    keys = IPV6_KEYS.pack(ip_proto, flow_label.to_bytes(4, "big"), ports, saddr, daddr)
    return siphash(keys, k0, k1) & 0xFFFFFFFF or 1


def _cpu_u16(port: int) -> int:
    """A be16 port as a little-endian CPU reads it."""
    return (port & 0xFF) << 8 | port >> 8
