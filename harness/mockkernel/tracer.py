"""The one interface through which the datapath reports what it does.

Every stage calls `hop()`; every kfree_skb_reason() calls `drop()`. The tracer
keeps each packet's Journey (attached to the skb) in arrival order; packets the
kernel creates in response (ICMP errors, ARP replies, echo replies) become
children of the packet that caused them.

Hops are immutable records, so the tracer keeps one copy of each distinct hop
and journeys share it: a packet handled like the one before costs no new
objects for Python's garbage collector to walk, which is most of what a long
run of journeys costs.

Memory stays bounded however many packets a test sends: the first
`journey_limit` packets' journeys are kept whole; summarise() folds the ones
after them into paths with packet counts (harness.journey.path_text(), as a
line-rate Result's paths are) once nothing but the tracer refers to them, and
the drops after as many into a count.
"""
from __future__ import annotations

import sys
from itertools import islice

from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Journey, Stage, path_key, path_text

_new_tuple = tuple.__new__
INTERNED_MAX = 65536  # distinct hops kept for sharing; then the store starts over
JOURNEY_LIMIT = 10_000  # journeys kept whole by default: 8x the most a test of the suites records (1225)
PATHS_KEPT = 10_000  # distinct paths counted one by one; packets on later new paths are counted together


class Lazy(tuple):
    """A hop summary formatted only when someone reads it: `fn(*args)` must
    depend only on the (immutable) args captured at the hop, so two with the
    same function and equal args are equal. (A tuple (fn, *args): hashed and
    compared in C when the tracer looks for an equal hop.)"""

    __slots__ = ()

    def __new__(cls, fn, *args):
        return _new_tuple(cls, (fn, *args))

    def __str__(self) -> str:
        return self[0](*self[1:])

    def __getnewargs__(self) -> tuple:  # pickle rebuilds it as Lazy(fn, *args)
        return tuple(self)


class Tracer:
    def __init__(self, journey_limit: int = JOURNEY_LIMIT) -> None:
        self.journeys: list[Journey] = []  # the first journey_limit, then those not summarised yet
        self.drops: list[Drop] = []
        self.interned: dict[Hop, Hop] = {}
        self.journey_limit = journey_limit
        self.paths: dict[tuple, list] = {}  # path_key() -> [its path_text(), packets]
        self.other_paths = 0  # packets summarised after PATHS_KEPT distinct paths were counted
        self.drops_summarised = 0

    def start(self, skb, summary: object, parent=None, hops: list[Hop] | None = None) -> Journey:
        """The packet's journey, starting with `hops` (a list it takes over) if given."""
        journey = Journey(summary) if hops is None else Journey(summary, hops)
        skb.journey = journey
        if parent is not None and parent.journey is not None:
            parent.journey.children.append(journey)
        else:
            self.journeys.append(journey)
        return journey

    def hop(self, skb, stage: Stage, where: str = "", verdict: str = "", summary: object = "") -> None:
        journey = skb.journey
        if journey is not None:
            # tuple.__new__ skips Hop's generated __new__, a Python function
            hop = _new_tuple(Hop, (stage, where, verdict, summary))
            interned = self.interned
            try:
                hop = interned.setdefault(hop, hop)
            except TypeError:  # a summary whose args cannot be hashed is kept as it is
                pass
            if len(interned) > INTERNED_MAX:
                interned.clear()
            journey.hops.append(hop)

    @staticmethod
    def add(skb, hop: Hop) -> None:
        """Record a prebuilt hop (constant hops cost no allocation). The
        per-packet path writes this body out where it records a hop
        (`journey = skb.journey; if journey is not None: journey.hops.append(hop)`):
        a hop then costs an append, not a call."""
        journey = skb.journey
        if journey is not None:
            journey.hops.append(hop)

    def drop(self, skb, reason: DropReason, stage: Stage, location: str) -> None:
        if reason.__class__ is not DropReason:
            raise TypeError(f"kfree_skb() at {location} gave the drop reason {reason!r}, not a DropReason")
        journey = skb.journey
        drop = Drop(reason, stage, location, str(journey.packet) if journey else "")
        if journey is not None:
            journey.drop = drop
        self.drops.append(drop)

    def start_frame(self, summary: object, hops: list[Hop]) -> Journey:
        """A journey for a frame that never becomes an skb (an XDP verdict)."""
        journey = Journey(summary, list(hops))
        self.journeys.append(journey)
        return journey

    def end(self, journey: Journey, drop: Drop) -> None:
        journey.drop = drop
        self.drops.append(drop)

    def summarise(self) -> None:
        """Fold the journeys after the first `journey_limit` into path counts
        (a journey something still refers to waits for a later call: an skb
        parked in a qdisc, neighbour or reassembly queue may add hops to it, and
        a caller holding it reads it whole), and the drops after as many into
        `drops_summarised`."""
        limit, journeys, paths = self.journey_limit, self.journeys, self.paths
        if len(journeys) > limit:
            carried = []
            run_hops = run_drop = run_entry = None  # the last path counted: a bulk run repeats it
            for journey in islice(journeys, limit, None):
                if _carried(journey):
                    carried.append(journey)
                    continue
                drop = journey.drop and journey.drop[:3]
                if journey.hops == run_hops and drop == run_drop and not journey.children:
                    run_entry[1] += 1
                    continue
                key = path_key(journey)
                entry = paths.get(key)
                if entry is None:
                    if len(paths) >= PATHS_KEPT:
                        self.other_paths += 1
                        continue
                    entry = paths[key] = [path_text(journey), 0]  # text, not the journey and its packet
                entry[1] += 1
                run_hops, run_drop, run_entry = (None, None, None) if journey.children else (journey.hops, drop, entry)
            journeys[limit:] = carried
        excess = len(self.drops) - limit
        if excess > 0:
            del self.drops[limit:]
            self.drops_summarised += excess

    def summary(self) -> list[tuple[str, int]]:
        """The summarised packets as (path, packets), most packets first."""
        packets_by_path: dict[str, int] = {}
        for path, packets in self.paths.values():
            packets_by_path[path] = packets_by_path.get(path, 0) + packets
        summary = sorted(packets_by_path.items(), key=lambda item: -item[1])
        if self.other_paths:
            summary.append((f"(paths after the first {PATHS_KEPT} distinct ones)", self.other_paths))
        return summary

    def reset(self) -> None:
        self.journeys.clear()
        self.drops.clear()
        self.interned.clear()
        self.paths.clear()
        self.other_paths = self.drops_summarised = 0


# getrefcount() of a journey nothing else refers to, in _carried(): its list (the
# tracer's or a parent's children), the caller's loop variable, the parameter and
# getrefcount()'s own argument
_UNCARRIED_REFS = 4


def _carried(journey: Journey) -> bool:
    """Whether anything (an skb, a caller) still refers to the journey or to one of its children's."""
    if sys.getrefcount(journey) > _UNCARRIED_REFS:
        return True
    for child in journey.children:  # a loop, not any(): no generator per journey
        if _carried(child):
            return True
    return False
