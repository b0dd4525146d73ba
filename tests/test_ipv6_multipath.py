"""The IPv6 multipath pieces against independent references: SipHash-2-4
(lib/siphash.c) against the reference vectors of its authors (key 00..0f,
message 00..len-1), the flow hash's symmetry (__flow_hash_consistentify()),
and the upper bounds rt6_multipath_rebalance() gives nexthops of a group,
worked out by hand. The suites (suites/test_ipv6_ecmp.py) compare the
per-flow choice with the real kernel's."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.mockkernel.core.flow_dissector import flow_hash_ipv6, siphash
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL
from harness.mockkernel.ipv6.ip6_fib import Fib6Info, Fib6Table

KEY = bytes(range(16))
K0, K1 = int.from_bytes(KEY[:8], "little"), int.from_bytes(KEY[8:], "little")


def test_siphash_2_4_gives_the_reference_vectors():
    # SipHash paper, appendix A (the 64-bit outputs, as little-endian words)
    assert siphash(b"", K0, K1) == 0x726FDB47DD0E0E31
    assert siphash(bytes(range(1)), K0, K1) == 0x74F839C593DC67FD
    assert siphash(bytes(range(2)), K0, K1) == 0x0D6C8009D9A94F5A
    assert siphash(bytes(range(15)), K0, K1) == 0xA129CA6149BE45E5


addresses = st.binary(min_size=16, max_size=16)
ports = st.integers(0, 0xFFFF)


@given(addresses, addresses, ports, ports, st.integers(0, 0xFFFFF))
def test_both_directions_of_a_flow_hash_alike(saddr, daddr, sport, dport, label):
    forth = flow_hash_ipv6(saddr, daddr, 17, label, sport, dport, 7, 7)
    assert flow_hash_ipv6(daddr, saddr, 17, label, dport, sport, 7, 7) == forth
    assert forth != 0


def _group(weights: tuple[int, ...]) -> list[Fib6Info]:
    table = Fib6Table(254)
    routes = [Fib6Info(254, bytes(16), 0, ifindex=2, gateway=bytes([0xFE, 0x80] + [0] * 13 + [i + 1]), weight=w)
              for i, w in enumerate(weights)]
    table.add(routes[0], NLM_F_CREATE | NLM_F_EXCL)
    for f6i in routes[1:]:
        table.add(f6i, NLM_F_CREATE)
    return routes


def test_equal_weights_split_the_31_bit_hash_space_in_halves():
    first, second = _group((1, 1))
    assert first.siblings == second.siblings == (first, second)
    assert (first.upper_bound, second.upper_bound) == (0x3FFFFFFF, 0x7FFFFFFF)


def test_weights_1_and_3_give_the_first_a_quarter():
    first, second = _group((1, 3))
    assert (first.upper_bound, second.upper_bound) == (0x1FFFFFFF, 0x7FFFFFFF)


def test_three_equal_weights_round_to_the_closest_bound():
    # DIV_ROUND_CLOSEST(2^31 * k, 3) - 1: 715827882.67 -> 715827883, 1431655765.33 -> 1431655765
    bounds = [f6i.upper_bound for f6i in _group((1, 1, 1))]
    assert bounds == [715827882, 1431655764, 0x7FFFFFFF]


def test_a_deleted_sibling_leaves_the_rest_rebalanced_and_the_last_alone():
    table = Fib6Table(254)
    first, second, third = routes = [Fib6Info(254, bytes(16), 0, ifindex=2, gateway=bytes([1] * 15 + [i]))
                                     for i in range(3)]
    for f6i in routes:
        table.add(f6i, NLM_F_CREATE)
    table.delete(second)
    assert first.siblings == third.siblings == (first, third)
    assert (first.upper_bound, third.upper_bound) == (0x3FFFFFFF, 0x7FFFFFFF)
    table.delete(first)
    assert third.siblings is None and second.siblings is None
