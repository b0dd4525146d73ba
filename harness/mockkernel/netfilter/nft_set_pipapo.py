"""nft_set_pipapo: sets whose concatenated key has intervals (`ip daddr . tcp dport
{ 10.0.0.0/8 . 10-23 }`; net/netfilter/nft_set_pipapo.c, nftables src/segtree.c
concat_range_aggregate() for how they list).

An element holds a [low, high] range per field (`Element.key` the lows,
`Element.high` the highs, tuples); a key matches an element when every field
lies in its range (nft_pipapo_lookup(): the bitmap of rules matching all
fields; here a walk over the elements, first match in insertion order, which
for the non-overlapping elements pipapo takes is the only one). Elements list
in the order they were added, each field as a value, a prefix or a range.
Left out: the kernel's refusal of overlapping elements (EEXIST) beyond an
element given twice.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_datatype import range_text


def is_pipapo(nset) -> bool:
    return nset.interval and len(nset.key_types) > 1


def add(nset, elements, add_exact) -> None:
    """Elements are kept as given; one already there is not added again."""
    add_exact(nset, elements, range(len(elements)))


def lookup(elements: list, entry):
    """key tuple -> the entry of the first element whose every range holds it, or None."""
    ranges = [(tuple(zip(e.key, e.high)), entry(e)) for e in elements]

    def pipapo_lookup(key):
        if key is None:
            return None
        for fields, value in ranges:
            if all(low <= part <= high for part, (low, high) in zip(key, fields)):
                return value
        return None
    return pipapo_lookup


def element_text(key_types: list, elem) -> str:
    return " . ".join(range_text(t, low, high) for t, low, high in zip(key_types, elem.key, elem.high))


def element_json(key_types: list, elem, interval_json) -> dict:
    return {"concat": [interval_json(t, low, high) for t, low, high in zip(key_types, elem.key, elem.high)]}
