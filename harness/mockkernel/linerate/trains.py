"""Packet trains through the kernel's functional path: probe the head, apply the rest in bulk.

A train is `count` identical packets of one flow that arrive on one port while
nothing else changes (the engine hands over the packets one RX queue served in
one slice of virtual time). The first packets are probes: each runs the real
path, exactly as Kernel.receive() runs one frame (DMA into the port's ring,
net_rx_action(): NAPI, XDP, the stack, the frames it transmits), with its
journey recorded. Around each probe the kernel's numeric state is read:

- counters that only add up (device stats, softnet's processed and backlog tail, the SNMP
  MIBs, nft rule and chain counters, conntrack statistics, RATEEST estimators'
  counters, hashlimit rate matches' counts, socket drops, eBPF program run counts, eBPF map values as
  little-endian 64-bit words),
- counters with a bound (an nft limit's tokens, a hashlimit bucket's credit and an
  xt quota's bytes run out at 0),
- and the shape of everything else (conntrack entries, socket queues,
  neighbours, dynamic sets, eBPF hash keys and event rings, the ICMP rate
  limiter's credit, hashlimit's and recent's per-key state).

When two consecutive probes take the same path (journey and transmitted frames
alike) with the same change to the counters and no change of shape, the next
packets would too: the rest of the train is applied as that change times the
packets left, up to the first bound a counter would cross; after that the
probing goes on packet by packet (a limit that ran out, a socket queue that
filled up, a first packet that created a connection all show as a different
path or a change of shape). All probes of a train run at one instant of
virtual time, so time-set fields (a conntrack entry's timeout, a limit's last
refill) are those of the train's instant: the engine's slice bounds the error.

Journeys are kept for the first JOURNEYS_KEPT probes of a run; every packet
counts in `paths` (its journey's text without the packet line: the same text
for the same path), so memory stays flat however long the run.
"""
from __future__ import annotations

import struct
from collections import Counter as Tally
from dataclasses import dataclass, fields

from harness.journey import Stage, path_key, path_text
from harness.mockkernel.core.dev import net_rx_action
from harness.mockkernel.net import DevStats
from harness.mockkernel.netfilter.nft_exprs import Counter, Limit
from harness.mockkernel.netfilter.xt_packet import quota_privs
from harness.mockkernel.netfilter.xt_rateest import rateest_counters
from harness.mockkernel.netfilter.xt_stateful import per_key_cells, per_key_entries, per_key_state

JOURNEYS_KEPT = 1000  # probes' journeys left in the tracer per run
DEV_STATS = tuple(f.name for f in fields(DevStats))
U64 = 1 << 64
MIN_HORIZON = 1e-6  # seconds: the finest a train is cut for a token bucket


@dataclass(eq=False)
class Layout:
    """Where the kernel's numbers are, read once per configuration."""

    cells: list  # (object, attribute) or (dict, key) of each value
    bounded: dict[int, int]  # value index -> the lowest value it may take
    refills: dict[int, float]  # value index -> what time adds back to it per second (a token bucket)
    blobs: list  # bytearrays of eBPF map values, read as words
    vectors: list  # lists of counters that only add up, read whole (the SNMP MIBs)


@dataclass
class Snapshot:
    shape: tuple
    layout: Layout
    values: list[int]
    blob_values: list[bytes]
    vector_values: list[tuple]


def _layout_key(kernel) -> tuple:
    """What the layout depends on: the committed ruleset (its generation, new
    at each commit), hashlimit's entries, devices, sockets, eBPF programs, maps
    and hash keys."""
    bpf = kernel.bpf
    maps = () if bpf is None else tuple((id(m), len(getattr(m, "_elems", ()))) for m in bpf.maps.values())
    return (kernel.nft.base_seq, per_key_entries(kernel), tuple(kernel.devices),
            tuple(map(id, kernel.udp_sockets.values())),
            tuple(map(id, kernel.ping_sockets.values())), id(bpf), maps, bpf and tuple(bpf.progs))


def _layout(kernel) -> Layout:
    cells: list = []
    bounded: dict[int, int] = {}
    refills: dict[int, float] = {}
    for dev in kernel.devices.values():
        cells += [(dev.stats, name) for name in DEV_STATS]
    cells += [(sd, name) for sd in kernel.softnet for name in ("processed", "input_queue_tail")]
    stats = kernel.conntrack.stats
    cells += [(stats, name) for name in stats]
    for table in kernel.nft.ruleset.tables:
        for chain in table.chains.values():
            if chain.stats is not None:
                cells += [(chain.stats, "packets"), (chain.stats, "bytes")]
            for rule in chain.rules:
                for stmt in rule.stmts:
                    if isinstance(stmt, Counter):
                        cells += [(stmt, "packets"), (stmt, "bytes")]
                    elif isinstance(stmt, Limit) and stmt.tokens is not None:
                        bounded[len(cells)] = 0
                        refills[len(cells)] = 1e9  # nft_limit's tokens are nanoseconds of its rate
                        cells.append((stmt, "tokens"))
    for bstats in rateest_counters(kernel):
        cells += [(bstats, "bytes"), (bstats, "packets")]
    for priv in quota_privs(kernel):
        bounded[len(cells)] = 0
        cells.append((priv, "quota"))
    for entry, name, floor, per_second in per_key_cells(kernel):
        if floor is not None:
            bounded[len(cells)] = floor
            refills[len(cells)] = per_second
        cells.append((entry, name))
    for table in (kernel.udp_sockets, kernel.ping_sockets):
        cells += [(sock, "drops") for sock in table.values()]
    blobs: list = []
    if kernel.bpf is not None:
        cells += [(prog, "run_cnt") for prog in kernel.bpf.progs.values()]
        for bpf_map in kernel.bpf.maps.values():
            if hasattr(bpf_map, "_data"):
                blobs += bpf_map._data
            elif hasattr(bpf_map, "_elems"):
                blobs += [value for elem in bpf_map._elems.values() for value in elem.values]
    mib = kernel.mib
    vectors = [mib.ip_statistics, mib.icmp_statistics, mib.icmpmsg_statistics, mib.tcp_statistics,
               mib.udp_statistics, mib.net_statistics]
    return Layout(cells, bounded, refills, blobs, vectors)


class StateReader:
    """Reads the kernel's numeric state and shape (the module docstring lists
    what), finding where the numbers are only when the configuration changed."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self._key: tuple | None = None
        self._layout: Layout | None = None

    def read(self) -> Snapshot:
        kernel = self.kernel
        key = _layout_key(kernel)
        if key != self._key:
            self._key, self._layout = key, _layout(kernel)
        layout = self._layout
        shape: list = [kernel.conntrack.count, len(kernel.neighbours), len(kernel.inet_peers),
                       len(kernel.ipfrags), kernel.icmp_global_credit, kernel.nat_seq]
        shape += [neigh.state for neigh in kernel.neighbours.values()]
        shape += [len(nset.elements) for table in kernel.nft.ruleset.tables for nset in table.sets.values()]
        shape += [len(sock.queue) for table in (kernel.udp_sockets, kernel.ping_sockets) for sock in table.values()]
        shape.append(per_key_state(kernel))
        if kernel.bpf is not None:
            for bpf_map in kernel.bpf.maps.values():
                shape.append(getattr(bpf_map, "_used", 0))  # a ring buffer's records
                shape += [ring.used for ring in getattr(bpf_map, "rings", {}).values()]  # a perf event array's
        values = [obj[name] if obj.__class__ is dict else getattr(obj, name) for obj, name in layout.cells]
        return Snapshot(tuple(shape), layout, values, [bytes(blob) for blob in layout.blobs],
                        [tuple(vector) for vector in layout.vectors])


@dataclass(frozen=True)
class Change:
    """What one packet changed: (value index, delta) pairs, (blob index, word
    deltas) and (vector index, ((position, delta), ...))."""

    values: tuple
    words: tuple
    vectors: tuple


def change_between(before: Snapshot, after: Snapshot) -> Change | None:
    """The change from `before` to `after`; None when the shape changed, so no
    packet after it can be assumed to do the same."""
    if before.shape != after.shape or before.layout is not after.layout:
        return None
    values = tuple((i, b - a) for i, (a, b) in enumerate(zip(before.values, after.values)) if a != b)
    words = []
    for i, (a, b) in enumerate(zip(before.blob_values, after.blob_values)):
        if a != b:
            if len(a) % 8:
                return None
            layout = struct.Struct(f"<{len(a) // 8}Q")
            deltas = tuple((y - x) % U64 for x, y in zip(layout.unpack(a), layout.unpack(b)))
            words.append((i, deltas))
    vectors = tuple((i, tuple((j, y - x) for j, (x, y) in enumerate(zip(a, b)) if x != y))
                    for i, (a, b) in enumerate(zip(before.vector_values, after.vector_values)) if a != b)
    return Change(values, tuple(words), vectors)


def bulk_limit(change: Change, state: Snapshot) -> int | None:
    """How many more packets may apply `change` before a bounded counter would
    cross its bound (None: no bound in the way)."""
    most = None
    for index, delta in change.values:
        floor = state.layout.bounded.get(index)
        if floor is not None and delta < 0:
            room = (state.values[index] - floor) // -delta
            most = room if most is None else min(most, room)
    return most


def apply_change(change: Change, state: Snapshot, times: int) -> None:
    """Apply `change` `times` over to the live objects `state` read."""
    for index, delta in change.values:
        obj, name = state.layout.cells[index]
        if isinstance(obj, dict):
            obj[name] += delta * times
        else:
            setattr(obj, name, getattr(obj, name) + delta * times)
    for index, deltas in change.words:
        blob = state.layout.blobs[index]
        layout = struct.Struct(f"<{len(blob) // 8}Q")
        words = layout.unpack(blob)
        layout.pack_into(blob, 0, *((word + delta * times) % U64 for word, delta in zip(words, deltas)))
    for index, deltas in change.vectors:
        vector = state.layout.vectors[index]
        for position, delta in deltas:
            vector[position] += delta * times


@dataclass
class Outcome:
    """What one probe did: its path, the frames it transmitted, the drop that ended it."""

    key: tuple
    path: str
    # (port, frame, skb, queued) in transmit order: queued is None for a frame the driver
    # sent, else whether the port's qdisc took the skb
    outputs: tuple
    drop: tuple | None  # (stage, reason, location)
    ns: float  # its CPU cost


@dataclass
class TrainMemory:
    """What a flow's packets did last, kept from one of its trains to the next."""

    last: tuple | None = None  # its last probe: (journeys, frames sent, change, layout)
    settled: bool = False  # its last train ended as two agreeing probes, no bound in sight
    # the virtual time that refills the smallest token bucket its packets drew on
    # (the most that bucket was seen to hold): its trains must not span more, or
    # the refill the bucket cannot hold is lost; None when it drew on none
    horizon: float | None = None


class Prober:
    """Runs trains of frames through one kernel, tallying paths, drops and outputs."""

    def __init__(self, kernel, cost_model) -> None:
        self.kernel = kernel
        self.state = StateReader(kernel)
        self._queued: list = []  # (port, frame, skb, accepted) a probe offered a qdisc
        self._bucket_most: dict[int, float] = {}  # id of a token bucket -> the most it was seen to hold
        self.cost_model = cost_model
        self.paths: Tally[str] = Tally()
        self.losses: Tally[tuple] = Tally()  # (stage, reason, where) -> packets
        self.journeys_kept = 0
        self.probes = 0
        self._costs: dict[str, float] = {}

    def probe(self, port: str, frame: bytes) -> Outcome:
        """One packet through the functional path, as Kernel.receive() runs it."""
        kernel = self.kernel
        tracer = kernel.tracer
        first_journey, first_drop = len(tracer.journeys), len(tracer.drops)
        self._queued = []
        kernel.xmit_hook = self._xmit
        try:
            kernel.nics[port].dma_rx(frame)
            net_rx_action(kernel)
        finally:
            kernel.xmit_hook = None
        journeys = tracer.journeys[first_journey:]
        outputs = []
        for name, nic in kernel.nics.items():
            if nic.wire:
                outputs += [(name, out, None, None) for out in nic.wire]
                nic.wire.clear()
        outputs += self._queued
        self.probes += 1
        if self.journeys_kept >= JOURNEYS_KEPT:
            del tracer.journeys[first_journey:]
            del tracer.drops[first_drop:]
        else:
            self.journeys_kept += len(journeys)
        path = " | ".join(path_text(journey) for journey in journeys)
        ns = self._costs.get(path)
        if ns is None:
            ns = self._costs[path] = sum(self.cost_model.packet_ns(journey, kernel) for journey in journeys)
        end = journeys[0].drop if journeys else None
        return Outcome(tuple(path_key(journey) for journey in journeys), path, tuple(outputs),
                       (end.stage, end.reason, end.location) if end is not None else None, ns)

    def _xmit(self, dev, skb) -> None:
        """net.xmit_hook during a probe: what __dev_queue_xmit() does after TC egress,
        except that a qdisc that queues keeps the packet for the engine to send at
        the port's pace. XDP's transmits (the journey's last hop is the XDP
        verdict) go to the driver as they do without the engine: no qdisc."""
        nic = self.kernel.nics[dev.name]
        journey = skb.journey
        q = dev.qdisc
        frame = bytes(skb.buf[skb.data:skb.tail])
        if q is None or q.enqueue is None or (journey is not None and journey.hops
                                               and journey.hops[-1].stage == Stage.XDP):
            if journey is not None:
                journey.hops.append(nic.tx_hop)
            nic.start_xmit(frame)
            return
        if journey is not None:
            journey.hops.append(q.enqueue_hop)
        accepted = bool(q.enqueue(skb, 1, self.kernel.clock.now))
        if journey is not None:
            if accepted:
                journey.hops.append(nic.tx_hop)  # it leaves when the engine's port sends it
            else:
                journey.hops[-1] = q.drop_hop
        self._queued.append((dev.name, frame, skb, accepted))

    def run(self, port: str, frame: bytes, count: int, tally, memory: TrainMemory) -> None:
        """`count` packets of `frame` arriving on `port` now; `tally(outcome, n, bulk)`
        hears what each group of identical packets did (bulk: not run, so what
        they leave in qdiscs is the listener's to queue). `memory` is the flow's
        last probe from its previous train: a first probe that does the same
        is the second of two that agree."""
        before = self.state.read()
        last, settled = memory.last, False
        done = 0
        while done < count:
            outcome = self.probe(port, frame)
            after = self.state.read()
            change = change_between(before, after)
            done += 1
            self._record(outcome, 1, tally, False)
            same = (outcome.key, tuple((port, out, queued) for port, out, _, queued in outcome.outputs), change,
                    after.layout)
            settled = False
            if change is not None:
                self._bucket_horizon(change, before, after, memory)
            if change is not None and same == last:
                room = bulk_limit(change, after)
                settled = room is None
                times = count - done if room is None else min(count - done, room)
                if times:
                    apply_change(change, after, times)
                    self._record(outcome, times, tally, True)
                    done += times
                    if done < count:
                        after = self.state.read()
            last = same
            before = after
        memory.last, memory.settled = last, settled

    def _bucket_horizon(self, change: Change, before: Snapshot, after: Snapshot, memory: TrainMemory) -> None:
        refills = after.layout.refills
        for index, _ in change.values:
            per_second = refills.get(index)
            if per_second is not None:
                cell = id(after.layout.cells[index][0])
                most = max(self._bucket_most.get(cell, 0), before.values[index], after.values[index])
                self._bucket_most[cell] = most
                horizon = max(most / per_second, MIN_HORIZON)
                memory.horizon = horizon if memory.horizon is None else min(memory.horizon, horizon)

    def _record(self, outcome: Outcome, times: int, tally, bulk: bool) -> None:
        self.paths[outcome.path] += times
        if outcome.drop is not None:
            self.losses[outcome.drop] += times
        tally(outcome, times, bulk)
