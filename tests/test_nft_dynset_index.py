"""The keyed lookup of a set the packet path changes (nft_set.KeyIndex, the
mock's nft_rhash: nft_dynset's add/update/delete and a rule's lookup of the
set) against the linear reference it replaced: every element scanned in
order, the lookup rebuilt after each change. Random packets, virtual time
and control-plane changes (`nft add/delete element`, `flush set`) must leave
the same elements, the same expiries and the same counts either way.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter import nf_tables, nft_dynset, nft_set
from harness.mockkernel.target import sh
from harness.target import CommandError

SOURCES = [f"10.0.0.{i}" for i in range(2, 8)]
# dport 1: add (own timeout), 2: update (own timeout), 3: delete, 4: update (the set's timeout)
RULESET = """table ip t {
\tset d { type ipv4_addr; size 4; flags dynamic,timeout; timeout 4s; }
\tchain c {
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr @d counter
\t\tudp dport 1 add @d { ip saddr timeout 5s }
\t\tudp dport 2 update @d { ip saddr timeout 3s }
\t\tudp dport 3 delete @d { ip saddr }
\t\tudp dport 4 update @d { ip saddr }
\t}
}
"""


class LinearElements:
    """The reference: the set's elements scanned in order for each packet."""

    def __init__(self, nset) -> None:
        self.elements = nset.elements

    def get(self, key):
        return next((e for e in self.elements if e.key == key), None)

    def append(self, elem) -> None:
        self.elements.append(elem)

    def remove(self, elem) -> None:
        self.elements.remove(elem)


def rebuilt_lookup_fn(nset, clock, data_fn):
    """The reference lookup: built from all the elements again whenever the packet path changed them."""
    built = [-1, None]

    def live_lookup(key):
        if built[0] != nset.version:
            nset.live = False
            built[0], built[1] = nset.version, nft_set.lookup_fn(nset, clock, data_fn)
            nset.live = True
        return built[1](key)
    return live_lookup


STEPS = st.lists(st.one_of(
    st.tuples(st.just("packet"), st.sampled_from(SOURCES), st.sampled_from((1, 2, 3, 4, 9))),
    st.tuples(st.just("advance"), st.sampled_from((0.5, 1, 2, 3, 4, 6))),
    st.tuples(st.sampled_from(("add element", "delete element")), st.sampled_from(SOURCES)),
    st.tuples(st.just("flush set")),
), max_size=40)


def run(steps) -> list:
    """What each step leaves: the set as `nft list set` prints it and the lookup rule's count."""
    k = Kernel()
    sh(k, ["nft", "-f", "-"], RULESET)
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    mac = k.dev_by_name("p0").mac
    seen = []
    for step in steps:
        kind = step[0]
        if kind == "packet":
            k.receive("p0", [bytes(Ether(dst=mac) / IP(src=step[1], dst="10.0.0.1") / UDP(sport=7, dport=step[2]))])
        elif kind == "advance":
            k.advance(step[1])
        else:
            element = f"{{ {step[1]} }}" if len(step) > 1 else ""
            try:
                sh(k, ["nft", *f"{kind} ip t d".split(), *([element] if element else [])])
            except CommandError as err:  # deleting what is not there
                seen.append(str(err).split("failed: ", 1)[1].splitlines()[0])
        seen.append((sh(k, ["nft", "list", "set", "ip", "t", "d"]),
                     [c.packets for c in nf_tables.counters(k)][0]))
    return seen


@settings(max_examples=60, deadline=None, database=None)
@given(STEPS)
def test_the_keyed_set_finds_adds_and_removes_as_a_linear_scan_does(steps):
    keyed = run(steps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nft_dynset, "key_index", LinearElements)
        patch.setattr(nft_set, "_live_lookup_fn", rebuilt_lookup_fn)
        linear = run(steps)
    assert keyed == linear


def test_an_element_removed_from_the_middle_leaves_the_others_found():
    """KeyIndex.remove(): the last element takes the place of the one removed."""
    elements = [nft_set.Element(key) for key in (1, 2, 3, 4)]
    index = nft_set.KeyIndex(elements)
    index.remove(elements[1])
    index.append(nft_set.Element(5))
    assert sorted(e.key for e in index.elements) == [1, 3, 4, 5]
    assert [index.get(key).key if index.get(key) else None for key in range(1, 6)] == [1, None, 3, 4, 5]
