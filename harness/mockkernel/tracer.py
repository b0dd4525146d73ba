"""The one interface through which the datapath reports what it does.

Every stage calls `hop()`; every kfree_skb_reason() calls `drop()`. The tracer
keeps each packet's Journey (attached to the skb) in arrival order; packets the
kernel creates in response (ICMP errors, ARP replies, echo replies) become
children of the packet that caused them.

Hops are immutable records, so the tracer keeps one copy of each distinct hop
and journeys share it: a packet handled like the one before costs no new
objects for Python's garbage collector to walk, which is most of what a long
run of journeys costs.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Journey, Stage

_new_tuple = tuple.__new__
INTERNED_MAX = 65536  # distinct hops kept for sharing; then the store starts over


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
    def __init__(self) -> None:
        self.journeys: list[Journey] = []
        self.drops: list[Drop] = []
        self.interned: dict[Hop, Hop] = {}

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
        """Record a prebuilt hop (the hot path's constant hops cost no allocation)."""
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

    def reset(self) -> None:
        self.journeys.clear()
        self.drops.clear()
        self.interned.clear()
