"""nf_tables sets and maps (net/netfilter/nf_tables_api.c, nft_set_hash.c, nft_set_rbtree.c;
nftables src/segtree.c for intervals, src/expression.c for how elements print).

A set holds elements keyed by host-order integers (tuples for concatenations,
strings for interface names). `flags interval` sets keep inclusive [low, high]
ranges, kept sorted; anonymous interval sets merge overlapping and adjacent
ranges as nft's auto-merge does. Maps carry a data value per element (a
verdict for verdict maps). Timeout sets stamp each element with its expiry in
virtual time. A catch-all element (`*`, NFT_SET_ELEM_CATCHALL) is what a
lookup finds when no key matches. `lookup_fn()` builds the datapath lookup
once per commit: a dict for exact keys, `Segments` for intervals.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from harness.mockkernel.netfilter import nft_set_pipapo
from harness.mockkernel.netfilter.nft_datatype import range_text


class Segments:
    """Disjoint inclusive integer ranges, each with a value, as
    nft_set_rbtree.c keeps an interval set: the elements sorted by key, a
    range as its start and the end after it (NFT_SET_ELEM_INTERVAL_END), and
    nft_rbtree_lookup() finding the closest boundary at or below the key,
    here by bisection over the boundaries (O(log n)). `get(key)` is the value
    of the range holding the key, None in a gap (or for no key: a failed load)."""

    __slots__ = ("bounds", "values")

    def __init__(self, ranges) -> None:
        """`ranges`: (low, high, value) in key order, none overlapping."""
        bounds: list[int] = []
        values: list = []
        for low, high, value in ranges:
            if bounds and bounds[-1] == low:  # adjacent to the previous range: its end is this start
                values[-1] = value
            else:
                bounds.append(low)
                values.append(value)
            bounds.append(high + 1)
            values.append(None)
        self.bounds, self.values = bounds, values

    def get(self, key):
        if key is None:
            return None
        i = bisect.bisect_right(self.bounds, key) - 1
        return self.values[i] if i >= 0 else None


class CatchAll:
    """The key of the catch-all element, `*`: no value of any type."""

    def __repr__(self) -> str:
        return "*"

    def __deepcopy__(self, memo):
        return self


CATCHALL = CatchAll()


@dataclass
class Element:
    key: object  # int | tuple | str; for interval sets the low end
    high: object = None  # interval sets: the inclusive high end
    data: object = None  # maps: the value (a Verdict for verdict maps)
    timeout: float | None = None  # an element's own timeout, when it has one
    expires: float | None = None  # virtual time it expires at (timeout sets)
    exprs: list | None = None  # its own stateful statements (a meter's: NFT_SET_EXT_EXPRESSIONS)


@dataclass
class NftSet:
    name: str
    key_types: list  # Datatype per concatenated field
    data_type: object = None  # Datatype (or "verdict") for maps
    flags: set = field(default_factory=set)  # interval, timeout, constant, dynamic
    anonymous: bool = False
    handle: int = 0
    timeout: float | None = None
    gc_interval: float | None = None
    size: int | None = None
    auto_merge: bool = False
    typeof: str | None = None  # `typeof ip saddr` as written, printed back instead of `type`
    data_typeof: str | None = None
    comment: str | None = None
    elements: list[Element] = field(default_factory=list)
    live: bool = False  # a rule updates it from the packet path (nft_dynset): lookups read it as it is now
    meter: bool = False  # a meter's set (NFT_SET_ANONYMOUS | NFT_SET_EVAL): listed by `list meters` only
    version: int = 0  # bumped by each change from the packet path
    index: KeyIndex | None = field(default=None, repr=False, compare=False)  # a live hash set's, key_index()

    @property
    def is_map(self) -> bool:
        return self.data_type is not None

    @property
    def interval(self) -> bool:
        return "interval" in self.flags

    def type_text(self) -> str:
        return " . ".join(t.name for t in self.key_types)


class KeyIndex:
    """nft_set_hash.c's rhashtable for a hash set the packet path changes
    (nft_dynset): each key's place in the set's elements, so that finding,
    adding or removing an element costs O(1) however many the set holds."""

    __slots__ = ("elements", "places")

    def __init__(self, elements: list[Element]) -> None:
        self.elements = elements
        self.places = {elem.key: place for place, elem in enumerate(elements)}

    def get(self, key) -> Element | None:
        place = self.places.get(key)
        return None if place is None else self.elements[place]

    def append(self, elem: Element) -> None:
        self.places[elem.key] = len(self.elements)
        self.elements.append(elem)

    def remove(self, elem: Element) -> None:
        """The last element takes the removed one's place (a hash set's
        elements have no order of their own: nft lists them sorted)."""
        place = self.places.pop(elem.key)
        last = self.elements.pop()
        if last is not elem:
            self.elements[place] = last
            self.places[last.key] = place


def key_index(nset: NftSet) -> KeyIndex:
    """The set's KeyIndex, made again when the control plane has changed its
    elements since (a transaction changes a copy of the list: _own())."""
    index = nset.index
    if index is None or index.elements is not nset.elements or len(index.places) != len(nset.elements):
        index = nset.index = KeyIndex(nset.elements)
    return index


class SetError(Exception):
    """nft's error for the elements given (message only; the caller adds
    where: `index` is the offending element's among those given, if one is,
    `related` the one it clashes with)."""

    def __init__(self, message: str, index: int | None = None, related: int | None = None):
        super().__init__(message)
        self.index, self.related = index, related


def add_elements(nset: NftSet, elements: list[Element], now: float, merge: bool) -> None:
    """Insert elements; interval sets re-normalise (nft_set_rbtree + segtree)."""
    for elem in elements:
        if "timeout" in nset.flags:
            timeout = elem.timeout if elem.timeout is not None else nset.timeout
            elem.expires = now + timeout if timeout else None
    if nft_set_pipapo.is_pipapo(nset):
        nft_set_pipapo.add(nset, elements, _add_exact)
        return
    if nset.interval:
        ranges = [i for i, e in enumerate(elements) if e.key is not CATCHALL]
        old = [e for e in nset.elements if e.key is not CATCHALL]
        try:
            merged = _normalise(old + [elements[i] for i in ranges], merge or nset.auto_merge, len(old))
        except SetError as err:  # name the elements by their place among those given
            raise SetError(str(err), *(None if i is None else ranges[i] for i in (err.index, err.related))) \
                from None
        nset.elements = [e for e in nset.elements if e.key is CATCHALL]
        _add_exact(nset, [e for e in elements if e.key is CATCHALL], [i for i, e in enumerate(elements)
                                                                       if e.key is CATCHALL])
        nset.elements += merged
        return
    _add_exact(nset, elements, range(len(elements)))


def _add_exact(nset: NftSet, elements: list[Element], indexes) -> None:
    """Add elements keyed by value (the catch-all too): one a key; a map's
    key given again with other data is the kernel's EEXIST."""
    known = {e.key: i for i, e in enumerate(nset.elements)}
    for index, elem in zip(indexes, elements):
        if elem.key in known:
            if nset.is_map and nset.elements[known[elem.key]].data != elem.data:
                raise SetError("Could not process rule: File exists", index)
            continue
        known[elem.key] = len(nset.elements)
        nset.elements.append(elem)


def delete_elements(nset: NftSet, elements: list[Element]) -> None:
    for index, elem in enumerate(elements):
        match = next((e for e in nset.elements if e.key == elem.key and e.high == elem.high), None)
        if match is None:
            raise SetError("Could not process rule: No such file or directory", index)
        nset.elements.remove(match)


def _normalise(elements: list[Element], merge: bool, first_new: int) -> list[Element]:
    """Sorted, overlaps merged (or refused); elements from `first_new` on
    are the ones given, which an error names by their index among them."""
    ordered = sorted(range(len(elements)), key=lambda i: (elements[i].key, elements[i].high))
    out: list[Element] = []
    origin = 0  # where the last range kept came from

    def clash(i: int) -> SetError:
        def given(j: int) -> int | None:
            return j - first_new if j >= first_new else None
        return SetError("conflicting intervals specified", given(i), given(origin))

    for i in ordered:
        elem = elements[i]
        last = out[-1] if out else None
        if last is not None and elem.key <= last.high:
            if not merge and (elem.key, elem.high) != (last.key, last.high):
                raise clash(i)
            if last.data != elem.data:
                raise clash(i)
            last.high = max(last.high, elem.high)
        elif last is not None and merge and elem.key == last.high + 1 and last.data == elem.data:
            last.high = elem.high
        else:
            out.append(Element(elem.key, elem.high, elem.data, elem.timeout, elem.expires))
            origin = i
    return out


def lookup_fn(nset: NftSet, clock, data_fn=lambda data: data):
    """The datapath's lookup: key -> True/data, or None when absent or expired.
    `data_fn` maps stored data to what the datapath wants (e.g. a verdict)."""
    if nset.live:
        return _live_lookup_fn(nset, clock, data_fn)
    live = [e for e in nset.elements if e.key is not CATCHALL]
    catchall = next((e for e in nset.elements if e.key is CATCHALL), None)
    lookup = _lookup_fn(nset, live, clock, data_fn)
    if catchall is None:
        return lookup
    fallback = data_fn(catchall.data) if nset.is_map else True

    def lookup_or_catchall(key):  # nft_lookup_eval(): nft_set_catchall_lookup() on a miss
        hit = lookup(key)
        return fallback if hit is None else hit
    return lookup_or_catchall


def _live_lookup_fn(nset: NftSet, clock, data_fn):
    """lookup_fn() of a set the packet path changes: its key_index() for a
    hash set, else rebuilt when its version moves."""
    if not nset.interval:
        return _indexed_lookup_fn(nset, clock, data_fn)
    built = [-1, None]

    def live_lookup(key):
        if built[0] != nset.version:
            nset.live = False
            built[0], built[1] = nset.version, lookup_fn(nset, clock, data_fn)
            nset.live = True
        return built[1](key)
    return live_lookup


def _indexed_lookup_fn(nset: NftSet, clock, data_fn):
    """A hash set's lookup through its key_index(): the element's data (True
    for a set) unless it has expired in a set with timeouts, else the
    catch-all's, else None."""
    expiring, is_map = "timeout" in nset.flags, nset.is_map

    def found(elem: Element):
        return data_fn(elem.data) if is_map else True

    def indexed_lookup(key):
        index = key_index(nset)
        elem = index.get(key)
        if elem is not None and not (expiring and elem.expires is not None and clock.now >= elem.expires):
            return found(elem)
        catchall = index.get(CATCHALL)
        return None if catchall is None else found(catchall)
    return indexed_lookup


def _lookup_fn(nset: NftSet, live: list[Element], clock, data_fn):
    expiring = "timeout" in nset.flags

    def entry(elem: Element):
        value = data_fn(elem.data) if nset.is_map else True
        return (value, elem.expires) if expiring else value
    if nft_set_pipapo.is_pipapo(nset):
        lookup = nft_set_pipapo.lookup(live, entry)
    elif nset.interval:
        lookup = Segments(sorted(((e.key, e.high, entry(e)) for e in live), key=lambda r: r[:2])).get
    else:
        lookup = {e.key: entry(e) for e in live}.get
    if not expiring:
        return lookup

    def timeout_lookup(key):
        hit = lookup(key)
        if hit is None or (hit[1] is not None and clock.now >= hit[1]):
            return None
        return hit[0]
    return timeout_lookup


# --- how `nft list` prints elements (calculate_delim in src/expression.c) ---

_FIVE_PER_LINE = {"integer", "inet_proto", "inet_service", "tcp_flag", "mark", "iface_index", "ct_dir"}
_TWO_PER_LINE = {"ipv4_addr", "ct_state", "ct_status", "pkt_type"}
NEWLINE_DELIM = ",\n\t\t\t     "


def format_elements(nset: NftSet, now: float, pctx=None) -> str:
    """`{ a, b }` as nft prints a set: anonymous sets (a meter's too) on one
    line, named ones wrapped by key type (2 addresses, 5 ports/marks per
    line, else one each). `pctx` prints elements' own statements."""
    texts = [format_element(nset, e, now, pctx) for e in sort_elements(nset) if not expired(e, now)]
    if nset.anonymous or nset.meter:
        return "{ " + ", ".join(texts) + " }"
    per_line = None
    if len(nset.key_types) == 1:
        name = nset.key_types[0].name
        per_line = 5 if name in _FIVE_PER_LINE else 2 if name in _TWO_PER_LINE else None
    out, count = "", 0
    for i, text in enumerate(texts):
        if i:
            out += ", " if per_line and count < per_line else NEWLINE_DELIM
            if not per_line or count >= per_line:
                count = 0
        out += text
        count += 1
    return "{ " + out + " }"


def expired(elem: Element, now: float) -> bool:
    """nft_set_elem_expired(): a set walk (a listing) skips it, the gc reaps it."""
    return elem.expires is not None and now >= elem.expires


def sort_elements(nset: NftSet) -> list[Element]:
    """In the order nft lists them, the catch-all last: netlink.c
    list_setelements() then list_expr_sort() (mergesort.c expr_msort_cmp(),
    an mpz compare of each key's value) for a set without intervals,
    interval_map_decompose() (by the low end) for one with them."""
    live = [e for e in nset.elements if e.key is not CATCHALL]
    if nft_set_pipapo.is_pipapo(nset):
        pass  # concat_range_aggregate(): as the kernel gives them back, in the order added
    elif nset.interval and len(nset.key_types) == 1:
        live.sort(key=lambda e: (e.key, e.high))
    else:
        key_types = nset.key_types
        live.sort(key=lambda e: msort_value(key_types, e.key))
        if len(key_types) == 1 and key_types[0].bitmask:
            # a flag set's element is `a | b`, sorted by its first flag (EXPR_BINOP: the left
            # operand's value), ties the other way round from the kernel's ascending dump
            live.sort(key=lambda e: (e.key & -e.key, -e.key))
    return live + [e for e in nset.elements if e.key is CATCHALL]


def msort_value(key_types: list, key) -> int:
    """expr_msort_value(): a value's mpz, which is its number, a string's
    bytes read as a host-endian (little-endian) number, so `"lo"` sorts
    before `"eth0"`; a concatenation's parts are each exported in their
    own byte order (a big-endian address, a host-endian mark) and the whole
    read as one little-endian number (concat_expr_msort_value()): the last
    part weighs most."""
    if len(key_types) == 1:
        return _msort_scalar(key)
    data = b"".join(_msort_export(dtype, part) for dtype, part in zip(key_types, key))
    return int.from_bytes(data, "little")


def _msort_scalar(value) -> int:
    if isinstance(value, str):
        return int.from_bytes(value.encode(), "little")
    return value if isinstance(value, int) else 0


def _msort_export(dtype, value) -> bytes:
    """mpz_export_data() of one part, in div_round_up(len, 8) bytes."""
    size = (dtype.size + 7) // 8
    if isinstance(value, str):
        return value.encode()[:size].ljust(size, b"\0")
    if not isinstance(value, int):
        return bytes(size)
    return (value & ((1 << size * 8) - 1)).to_bytes(size, "big" if dtype.byteorder == "big" else "little")


def format_key(types_: list, key) -> str:
    if len(types_) > 1:
        return " . ".join(t.format(k) for t, k in zip(types_, key))
    if types_[0].bitmask:
        return types_[0].format_element(key)
    return types_[0].format(key)


def format_element(nset: NftSet, elem: Element, now: float, pctx=None) -> str:
    if elem.key is CATCHALL:
        text = "*"
    elif nft_set_pipapo.is_pipapo(nset):
        text = nft_set_pipapo.element_text(nset.key_types, elem)
    elif nset.interval:
        text = range_text(nset.key_types[0], elem.key, elem.high)
    else:
        text = format_key(nset.key_types, elem.key)
    if elem.exprs:  # set_elem_expr_print(): the statements before the timeout
        text += "".join(f" {stmt.text(pctx)}" for stmt in elem.exprs)
    if "timeout" in nset.flags and (not nset.anonymous or nset.meter):
        if elem.timeout is not None and elem.timeout != nset.timeout:
            text += f" timeout {format_time(elem.timeout)}"
        if elem.expires is not None:
            text += f" expires {format_time(max(elem.expires - now, 0.0))}"
    if nset.is_map:
        data = str(elem.data) if isinstance(nset.data_type, str) else nset.data_type.format(elem.data)
        text += f" : {data}"
    return text


def format_time(seconds: float) -> str:
    """time_to_str(): 1d2h3m4s5ms, zero parts left out."""
    ms = int(round(seconds * 1000))
    parts = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms or not parts:
        parts.append(f"{ms}ms")
    return "".join(parts)
