"""The one interface through which the datapath reports what it does.

Every stage calls `hop()`; every kfree_skb_reason() calls `drop()`. The tracer
keeps each packet's Journey (attached to the skb) in arrival order; packets the
kernel creates in response (ICMP errors, ARP replies, echo replies) become
children of the packet that caused them.
"""
from __future__ import annotations

from functools import partial

from harness.journey import Drop, Hop, Journey

_new_tuple = tuple.__new__


class Lazy(partial):
    """A hop summary formatted only when someone reads it: `fn(*args)` must
    depend only on the (immutable) args captured at the hop. (A partial: it
    is built in C, with no Python __init__ per hop.)"""

    __slots__ = ()

    def __str__(self) -> str:
        return self()


class Tracer:
    def __init__(self) -> None:
        self.journeys: list[Journey] = []
        self.drops: list[Drop] = []

    def start(self, skb, summary: object, parent=None) -> Journey:
        journey = Journey(summary)
        skb.journey = journey
        if parent is not None and parent.journey is not None:
            parent.journey.children.append(journey)
        else:
            self.journeys.append(journey)
        return journey

    def hop(self, skb, stage: str, where: str = "", verdict: str = "", summary: object = "") -> None:
        journey = skb.journey
        if journey is not None:
            # tuple.__new__ skips Hop's generated __new__, a Python function
            journey.hops.append(_new_tuple(Hop, (stage, where, verdict, summary)))

    @staticmethod
    def add(skb, hop: Hop) -> None:
        """Record a prebuilt hop (the hot path's constant hops cost no allocation)."""
        journey = skb.journey
        if journey is not None:
            journey.hops.append(hop)

    def drop(self, skb, reason: str, stage: str, location: str) -> None:
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
