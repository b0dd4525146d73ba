"""The mock at line rate: a traffic profile through the kernel in virtual time.

Two models run side by side, the timing one as a fluid, the functional one on
packet trains (trains.py):

Timing (drivers/net/*, net/core/dev.c): each stream's packets leave the tester
at the stream's rate, one after another (its cycle of frames: traffic.py
stream_frames()) and arrive when their last bit has crossed the link (L1
serialisation at the port's `speed`). RSS (rss.py) puts each distinct frame,
a flow, on an RX queue of its port (`channels` queues, queue i served by CPU
i % ncpus). A queue is a ring of `rx_ring` descriptors: arrivals that find it
full are missed (rx_missed_errors, the queue's drops). Interrupt coalescing
(`ethtool -C rx-usecs/rx-frames`, with mlx5's moderation semantics: the
interrupt fires rx-usecs after the first packet, or earlier once rx-frames are
waiting; rx-usecs 0 interrupts at once) delays the first NAPI poll; once
scheduled, NAPI polls the queue until it finds it empty (napi_complete_done(),
which re-arms the interrupt). A CPU serves its scheduled queues round robin,
NAPI_POLL_WEIGHT packets a poll, paying each packet's cost (the cost model's
ns for the packet's path): in the fluid, every backlogged queue of a CPU gets
the same packet rate, a queue that keeps up gets its arrival rate. Rounds of
net_rx_action() end after netdev_budget packets or netdev_budget_usecs with
work left: each such round counts in time_squeeze. A packet's latency is
tester to tester: RX serialisation, waiting in the ring (first in, first out,
read off the queue's arrival and departure curves), its processing, waiting
for the polls of the CPU's backlogged queues when its own queue keeps up (half
a round of their NAPI weights), and TX serialisation at the output port's
speed behind what that port still has to send.

Functional: every SLICE of virtual time, each flow's packets that its queue
served meanwhile run through the kernel as one train, at that instant, on the
queue's CPU (eBPF per-CPU maps see it). A settled flow, whose last train ended
in bulk with no bound in sight, waits until it has SETTLED_TRAIN packets or
SETTLED_AGE has passed: the kernel's state for it lags at most that much. A flow's first packet runs when its
queue first polls it, so its cost is known before the timing model needs it.
Paths, drops and the frames sent come from the trains; the cost of the
packets' paths feeds back into the timing model from slice to slice.

Egress: the trains' probes run with the kernel's `xmit_hook` set (trains.py):
a port whose qdisc queues (tbf, htb, pfifo_fast, ...) gets the probe's packet
enqueued at once and the rest of the train spread over the next slice in
EGRESS_PIECES pieces; the port sends from its qdisc at line rate, each train as
many packets as the qdisc lets go (its watchdog's next_event() when it holds
them), and a packet waits behind the qdisc's backlog at the pace the port sent
lately. A noqueue port (veth's default) sends what the stack gives it at line
rate, its packets waiting behind what it still has to send. XDP's transmits
skip the qdisc, as ndo_xdp_xmit() does.

The backlog (net/core/dev.c enqueue_to_backlog(), process_backlog()): a flow
whose probes passed netif_rx() (a BPF_F_INGRESS redirect, lo) feeds its CPU's
backlog, a second fluid queue of netdev_max_backlog + 1 packets, with what its
RX queue served times its passes per packet. The backlog NAPI is polled in
turn with the CPU's queues, dev_weight packets a poll against their
NAPI_POLL_WEIGHT: while a queue of the CPU has more than a poll's worth, the
backlog drains at most dev_weight / NAPI_POLL_WEIGHT of the fastest such
queue's rate; otherwise it keeps up. What overflows is lost CPU_BACKLOG,
counted in softnet's dropped, and taken off the flows' trains in proportion to
what they fed.

Left out: of the backlog, its own CPU time (a packet's whole path is charged to
its RX queue, also for one the backlog drops), its wait in latency, what the
packets it drops counted before netif_rx() (softnet's processed, TC and map
counters: they run in no train), the device's rx_dropped and the journey of
its drops (their path is `NIC_RX[port] -> netif_rx on cpuN`), and RPS; GRO, TX rings and
TX completion (a noqueue port never refuses a packet), the IRQ's own cost, packets that the kernel sends on its own (ARP,
timers) during a run.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.ethtool import rss_defaults
from harness.mockkernel.core.skbuff import skb_clone
from harness.mockkernel.linerate.cost import CostModel
from harness.mockkernel.core.rss import rx_queue_of
from harness.mockkernel.linerate.trains import Outcome, Prober, TrainMemory
from harness.mockkernel.nic import NAPI_POLL_WEIGHT
from harness.mockkernel.sched.sch_generic import DROP_LOCATION
from harness.progress import ProgressBar
from harness.traffic import (LatencyRecorder, Loss, Mode, PortStats, Profile, Result, Stream, StreamStats, l1_bits,
                             stream_frames, stream_pps)

SLICE = 1e-3  # virtual seconds between the functional trains
# a settled flow (its last train ended in bulk, no limit in sight) waits for a
# train this long, or this old: many slow flows cost few probes
SETTLED_TRAIN, SETTLED_AGE = 64, 50e-3
EGRESS_PIECES = 64  # a train reaches a queueing qdisc in this many pieces over a slice
PACE_SLICES = 8  # a qdisc's backlog drains at the pace its port sent over this many slices
EPSILON = 1e-9  # packets: a ring holding less is empty


@dataclass(eq=False)
class StreamRun:
    """One stream in a run: when it sends, what came back."""

    windows: list[tuple[float, float]]  # (first, end) send times of each burst
    stats: StreamStats
    recorder: LatencyRecorder | None


@dataclass(eq=False)
class Flow:
    """One distinct frame of a stream: it always hashes to the same queue and
    takes the same path while the kernel's state lets it."""

    run: StreamRun
    frame: bytes
    queue: "RxQueue"
    rate: float  # packets per second while its stream sends
    rx_time: float  # L1 serialisation on the input port
    arrivals: int  # packets of it the run sends
    current: float = 0.0  # its arrival rate now
    in_ring: float = 0.0
    served: float = 0.0
    missed: float = 0.0
    done: int = 0  # packets run through the kernel
    cost: float | None = None  # CPU seconds per packet, from its last train
    delivered: float = 0.0  # frames it makes the stack transmit per packet, from its last train
    qdisc_took: float = 1.0  # of those, the share the output port's qdisc took in the last slice
    tx_port: str | None = None
    tx_time: float = 0.0  # L1 serialisation of what it transmits
    taken: float = 0.0  # packets its queue served in the last interval
    memory: TrainMemory = field(default_factory=TrainMemory)
    last_train: float = 0.0
    latency_carry: float = 0.0
    backlog_passes: float = 0.0  # netif_rx() calls per packet, from its last train
    backlog_lost: float = 0.0  # packets its CPU's backlog dropped (fluid)
    backlog_dropped: int = 0  # of those, taken off its trains


@dataclass(eq=False)
class RxQueue:
    """One RX ring and its NAPI context."""

    port: str
    index: int
    cpu: int
    capacity: int
    rx_usecs: float
    rx_frames: int
    flows: list[Flow] = field(default_factory=list)
    backlog: float = 0.0
    arrival_rate: float = 0.0
    service_rate: float = 0.0
    polling: bool = False
    full_polls: bool = False  # it held more than a poll takes in the last interval
    taken: float = 0.0  # packets it served in the last interval
    irq_at: float | None = None
    admitted: float = 0.0  # cumulative, for the arrival curve
    departed: float = 0.0
    history: deque = field(default_factory=deque)  # (time, admitted) breakpoints of the arrival curve

    def cost(self) -> float:
        """CPU seconds per packet of what the queue holds, or of what arrives when it is empty."""
        if self.backlog > EPSILON:
            return sum(f.in_ring * f.cost for f in self.flows if f.in_ring > 0) / self.backlog
        return sum(f.current * f.cost for f in self.flows if f.current) / self.arrival_rate \
            if self.arrival_rate else 0.0

    def arrival_time(self, ordinal: float) -> float:
        """When the `ordinal`-th admitted packet arrived (the arrival curve, inverted)."""
        history = self.history
        while len(history) > 2 and history[1][1] <= ordinal:
            history.popleft()
        for (t0, a0), (t1, a1) in zip(history, list(history)[1:]):
            if ordinal <= a1:
                return t0 if a1 == a0 else t0 + (t1 - t0) * (ordinal - a0) / (a1 - a0)
        return history[-1][0]


class Engine:
    """One run of a profile through `kernel` (MockTarget.traffic())."""

    def __init__(self, kernel, cost_model: CostModel) -> None:
        self.kernel = kernel
        self.prober = Prober(kernel, cost_model)
        self.runs: list[StreamRun] = []
        self.queues: list[RxQueue] = []
        self.flows: list[Flow] = []
        self.start = kernel.clock.now
        self.port_stats: dict[str, PortStats] = {}
        self.tx_backlog: dict[str, float] = {}  # seconds a packet waits behind what a port has to send
        self.egress: list = []  # heap of (time, order, dev, skb, count, flow, path, queued) for qdiscs
        self.egress_order = itertools.count()
        self.owners: WeakKeyDictionary = WeakKeyDictionary()  # a queued skb -> the stream run it belongs to
        self.queueing: dict = {}  # name -> device whose qdisc the engine sends from
        self.link_free: dict[str, float] = {}  # when each such port's link is free again
        self.sent_bytes: dict[str, int] = {}  # what each such port sent since the last slice
        self.pace: dict[str, deque] = {}  # (seconds, bytes) each such port sent in its last slices
        self.egress_until = 0.0
        self.qdisc_answers: dict[Flow, list[int]] = {}  # packets each flow's qdisc took, of those offered
        self.tx_sent: dict[str, float] = {}  # seconds of sending noqueue ports were given in the interval
        self.notes: list[str] = []
        self.squeeze: list[float] = [0.0] * kernel.ncpus
        self.busy: list[float] = [0.0] * kernel.ncpus
        self.cpu_backlog: list[float] = [0.0] * kernel.ncpus  # packets in each CPU's input_pkt_queue
        self.via_backlog: list[Flow] = []  # flows whose packets pass netif_rx()

    # setup -------------------------------------------------------------------
    def _port_dev(self, stream: Stream):
        dev = self.kernel.dev_by_name(stream.port)
        if dev is None or stream.port not in self.kernel.nics:
            raise ValueError(f"stream {stream.id}: no port {stream.port!r} on the mock DUT")
        return dev

    def _line_shares(self, streams: dict[Stream, list[bytes]]) -> dict[str, float]:
        """The share of its rate each stream of a port gets: 1, or the port's line
        rate over what its streams (with their frames) ask together (L1), so the
        port never sends more than its line, as a generator's port cannot."""
        asked: dict[str, float] = {}
        for stream, frames in streams.items():
            line_bps = self._port_dev(stream).speed * 1e6
            asked[stream.port] = asked.get(stream.port, 0.0) + \
                stream_pps(stream, line_bps) * sum(l1_bits(len(f)) for f in frames) / len(frames) / line_bps
        return {port: min(1.0, 1.0 / load) if load else 1.0 for port, load in asked.items()}

    def _add_stream(self, stream: Stream, frames: list[bytes], duration: float | None, share: float) -> None:
        kernel = self.kernel
        dev = self._port_dev(stream)
        line_bps = dev.speed * 1e6
        asked = stream_pps(stream, line_bps)
        pps = asked * share
        if pps < asked:
            self.notes.append(f"stream {stream.id}: {asked:.0f} pps asked, {pps:.0f} sent: {stream.port}'s line rate "
                              "shared by its streams")
        if stream.mode is Mode.CONTINUOUS:
            packets = math.ceil(pps * duration - EPSILON)  # every packet due within the duration, as pjgen sends
            windows = [(0.0, packets / pps)]
        else:
            burst = stream.count / pps
            gap = stream.ibg if stream.mode is Mode.MULTI_BURST else 0.0
            bursts = stream.bursts if stream.mode is Mode.MULTI_BURST else 1
            packets = stream.count * bursts
            windows = [(b * (burst + gap), b * (burst + gap) + burst) for b in range(bursts)]
        run = StreamRun(windows, StreamStats(stream.id), LatencyRecorder() if stream.latency else None)
        self.runs.append(run)
        run.stats.opackets = packets
        cycles, rest = divmod(packets, len(frames))
        run.stats.obytes = cycles * sum(map(len, frames)) + sum(map(len, frames[:rest]))
        port = self.port_stats.setdefault(stream.port, PortStats())
        port.opackets += packets
        port.obytes += run.stats.obytes
        rss_defaults(kernel, dev)
        weights: dict[bytes, int] = {}
        for frame in frames:
            weights[frame] = weights.get(frame, 0) + 1
        head: dict[bytes, int] = {}
        for frame in frames[:rest]:
            head[frame] = head.get(frame, 0) + 1
        for frame, weight in weights.items():
            queue = self._queue(stream.port, rx_queue_of(dev, frame)[1])
            flow = Flow(run, frame, queue, pps * weight / len(frames), l1_bits(len(frame)) / line_bps,
                        cycles * weight + head.get(frame, 0))
            queue.flows.append(flow)
            self.flows.append(flow)

    def _queue(self, port: str, index: int) -> RxQueue:
        for queue in self.queues:
            if queue.port == port and queue.index == index:
                return queue
        dev = self.kernel.dev_by_name(port)
        queue = RxQueue(port, index, index % self.kernel.ncpus, dev.rx_ring, dev.coalesce["rx-usecs"] * 1e-6,
                        dev.coalesce["rx-frames"])
        queue.history.append((0.0, 0.0))
        self.queues.append(queue)
        return queue

    # the run -----------------------------------------------------------------
    def run(self, profile: Profile, duration: float | None) -> Result:
        profile.check_duration(duration)
        streams = {stream: stream_frames(stream) for stream in profile.streams}  # each stream's cycle, built once
        shares = self._line_shares(streams)
        for stream, frames in streams.items():
            self._add_stream(stream, frames, duration, shares[stream.port])
        sending = max((w[1] for run in self.runs for w in run.windows), default=0.0)
        stashed = {name: nic.wire for name, nic in self.kernel.nics.items()}
        for nic in self.kernel.nics.values():
            nic.wire = []
        try:
            with ProgressBar("mock traffic", sending, "{completed:.3f}/{total:.3f} s simulated{draining}") as bar:
                end = self._simulate(bar)
        finally:
            for name, nic in self.kernel.nics.items():
                nic.wire = stashed[name] + nic.wire
        return self._result(sending, end)

    def _breakpoints(self) -> list[float]:
        return sorted({t + flow.rx_time for flow in self.flows for window in flow.run.windows for t in window})

    def _set_rates(self, now: float) -> None:
        """Arrival rates of the flows and queues for the interval starting `now`."""
        for queue in self.queues:
            queue.arrival_rate = 0.0
        for flow in self.flows:
            sending = any(first + flow.rx_time <= now < end + flow.rx_time for first, end in flow.run.windows)
            flow.current = flow.rate if sending else 0.0
            flow.queue.arrival_rate += flow.current

    def _simulate(self, bar: ProgressBar) -> float:
        breakpoints = deque(self._breakpoints())
        now = 0.0
        next_slice = SLICE
        self._set_rates(now)
        while True:
            if breakpoints and breakpoints[0] <= now:
                while breakpoints and breakpoints[0] <= now:
                    breakpoints.popleft()
                self._set_rates(now)
            for queue in self.queues:
                self._interrupt(queue, now)
                if queue.polling:
                    self._first_packets(queue, now)
            for cpu in range(self.kernel.ncpus):
                self._share_cpu([q for q in self.queues if q.cpu == cpu and q.polling])
            step = self._next_event(now, breakpoints, next_slice)
            if step is None:
                break
            self._advance(now, step)
            now += step
            if now >= next_slice - EPSILON * SLICE:
                self._functional(now)
                next_slice = now + SLICE
                bar.update(min(now, bar.total), draining=", draining" if now > bar.total else "")
            for queue in self.queues:
                self._napi_complete(queue)
        return self._finish(now)

    def _interrupt(self, queue: RxQueue, now: float) -> None:
        """Arm the queue's interrupt when packets wait or arrive, fire it when due."""
        if queue.polling:
            return
        if queue.irq_at is None and (queue.backlog > EPSILON or queue.arrival_rate > 0):
            queue.irq_at = now + queue.rx_usecs
            if queue.rx_usecs and queue.rx_frames and queue.arrival_rate:
                queue.irq_at = min(queue.irq_at, now + max(queue.rx_frames - queue.backlog, 0) / queue.arrival_rate)
        if queue.irq_at is not None and queue.irq_at <= now + EPSILON * SLICE:
            queue.irq_at = None
            queue.polling = True

    def _first_packets(self, queue: RxQueue, now: float) -> None:
        """A flow's first packet runs through the kernel when its queue first
        polls it: its path's cost is what the timing model charges."""
        for flow in queue.flows:
            if flow.cost is None and (flow.current or flow.in_ring > EPSILON):
                self._train(flow, 1, now)

    @staticmethod
    def _napi_complete(queue: RxQueue) -> None:
        """napi_complete_done(): a poll that found the ring empty re-arms the interrupt."""
        if not queue.polling or queue.backlog > EPSILON:
            return
        if queue.arrival_rate == 0 or queue.rx_usecs > 0:
            queue.polling = False
            queue.backlog = 0.0

    def _share_cpu(self, queues: list[RxQueue]) -> None:
        """Round robin over the CPU's scheduled queues, as a fluid: each backlogged
        queue gets the same packet rate, one that keeps up its arrival rate."""
        costs = {id(q): q.cost() for q in queues}
        left = 1.0
        weight = sum(costs.values())
        keeping_up = sorted((q for q in queues if q.backlog <= EPSILON), key=lambda q: q.arrival_rate)
        shared = [q for q in queues if q.backlog > EPSILON]
        for index, queue in enumerate(keeping_up):
            if queue.arrival_rate * weight > left:  # it and every faster one get the shared rate
                shared += keeping_up[index:]
                break
            queue.service_rate = queue.arrival_rate
            left -= queue.arrival_rate * costs[id(queue)]
            weight -= costs[id(queue)]
        rate = left / weight if weight > 0 else 0.0
        for queue in shared:
            queue.service_rate = rate if costs[id(queue)] > 0 else float("inf")

    def _next_event(self, now: float, breakpoints: deque, next_slice: float) -> float | None:
        times = [next_slice]
        if breakpoints:
            times.append(breakpoints[0])
        active = bool(breakpoints)
        for queue in self.queues:
            if queue.irq_at is not None:
                times.append(queue.irq_at)
                active = True
            if queue.backlog > EPSILON or queue.polling or queue.arrival_rate:
                active = True
            if not queue.polling:
                if queue.arrival_rate and queue.backlog < queue.capacity - EPSILON:
                    times.append(now + (queue.capacity - queue.backlog) / queue.arrival_rate)
                continue
            net = queue.arrival_rate - queue.service_rate
            if net > 0 and queue.backlog < queue.capacity - EPSILON:
                times.append(now + (queue.capacity - queue.backlog) / net)
            elif net < 0 and queue.backlog > EPSILON:
                times.append(now + queue.backlog / -net)
        if not active:
            return None
        return max(min(times) - now, 0.0) or EPSILON * SLICE

    def _advance(self, now: float, step: float) -> None:
        """Move every queue `step` seconds on at the interval's constant rates."""
        for queue in self.queues:
            arriving = queue.arrival_rate * step
            served = queue.service_rate * step if queue.polling else 0.0
            room = queue.capacity - queue.backlog
            if queue.polling and queue.backlog <= EPSILON and queue.service_rate >= queue.arrival_rate:
                served = arriving
            admitted = min(arriving, room + served)
            missed = arriving - admitted
            served = min(served, queue.backlog + admitted)
            self._move_flows(queue, step, arriving, admitted, missed, served)
            start_ordinal, held = queue.departed, queue.backlog
            queue.full_polls = held > EPSILON or queue.backlog + admitted - served > EPSILON
            queue.taken = served
            backlog = queue.backlog + admitted - served
            # snapped to the ring's ends, so rounding never leaves an event a hair away
            queue.backlog = 0.0 if backlog < EPSILON else queue.capacity if queue.capacity - backlog < EPSILON else backlog
            queue.admitted += admitted
            queue.departed += served
            history = queue.history
            history.append((now + step, queue.admitted))
            while len(history) > 2 and history[1][1] <= start_ordinal:  # what left the ring is history
                history.popleft()
            self._tx_demand(queue)
            if served > 0:
                self._latency(queue, now, step, start_ordinal, served)
                cost = queue.cost()
                self.busy[queue.cpu] += served * cost
                if held > EPSILON or queue.backlog > EPSILON:  # rounds that found more than a budget
                    budget = self.kernel.sysctl.values["net.core.netdev_budget"]
                    usecs = self.kernel.sysctl.values["net.core.netdev_budget_usecs"] * 1e-6
                    self.squeeze[queue.cpu] += max(served / budget, step / usecs)
        if self.via_backlog:
            self._process_backlog()
        self._drain_tx(step)

    def _process_backlog(self) -> None:
        """Each CPU's backlog over the interval (module doc): fed by the flows that
        pass netif_rx(), drained by process_backlog()'s share of the polls."""
        sysctls = self.kernel.sysctl.values
        capacity = sysctls["net.core.netdev_max_backlog"] + 1  # enqueue_to_backlog(): qlen <= max_backlog
        share = sysctls["net.core.dev_weight"] / NAPI_POLL_WEIGHT
        for cpu, level in enumerate(self.cpu_backlog):
            feeding = [flow for flow in self.via_backlog if flow.queue.cpu == cpu and flow.taken]
            fed = sum(flow.taken * flow.backlog_passes for flow in feeding)
            if not fed and not level:
                continue
            full = [q.taken for q in self.queues if q.cpu == cpu and q.polling and q.full_polls]
            if not full:  # every poll emptied its queue: the backlog's poll empties it too
                self.cpu_backlog[cpu] = 0.0
                continue
            drained = share * max(full)
            level += fed - drained
            if level > capacity:
                lost, level = level - capacity, float(capacity)
                for flow in feeding:
                    flow.backlog_lost += lost * flow.taken * flow.backlog_passes / fed
            self.cpu_backlog[cpu] = max(level, 0.0)

    def _tx_demand(self, queue: RxQueue) -> None:
        """What the flows the queue served in the interval give noqueue ports to
        send (the fluid's rate, not the trains': a settled flow's train can stand
        for tens of milliseconds of its packets)."""
        for flow in queue.flows:
            port = flow.tx_port
            if flow.taken and port is not None and port not in self.queueing:
                self.tx_sent[port] = self.tx_sent.get(port, 0.0) + flow.taken * flow.delivered * flow.tx_time

    def _move_flows(self, queue: RxQueue, step: float, arriving: float, admitted: float, missed: float,
                    served: float) -> None:
        """Each flow's share of what arrived, was missed and was served."""
        kept = admitted / arriving if arriving else 0.0
        held = queue.backlog
        for flow in queue.flows:
            came = flow.current * step
            flow.missed += came - came * kept
            flow.in_ring += came * kept
        total = held + admitted
        for flow in queue.flows:
            flow.taken = take = served * flow.in_ring / total if total > EPSILON else 0.0
            flow.in_ring = max(flow.in_ring - take, 0.0)
            flow.served += take

    def _latency(self, queue: RxQueue, now: float, step: float, first: float, served: float) -> None:
        """Latency of the packets the queue served in the interval, at its two ends."""
        if not any(flow.run.recorder is not None for flow in queue.flows):
            return
        waits = (now - queue.arrival_time(first), now + step - queue.arrival_time(first + served))
        others = sum(NAPI_POLL_WEIGHT * q.cost() for q in self.queues
                     if q is not queue and q.cpu == queue.cpu and q.polling and q.backlog > EPSILON)
        extra = queue.cost() + (others / 2 if queue.backlog <= EPSILON else 0.0)
        for flow in queue.flows:
            recorder = flow.run.recorder
            if recorder is None or not flow.delivered:
                continue
            flow.latency_carry += flow.taken * flow.delivered * flow.qdisc_took
            count = int(flow.latency_carry)
            if not count:
                continue
            flow.latency_carry -= count
            tx = flow.tx_time + self.tx_backlog.get(flow.tx_port, 0.0)
            base = flow.rx_time + extra + tx
            recorder.add((waits[0] + base) * 1e6, count // 2)
            recorder.add((waits[1] + base) * 1e6, count - count // 2)

    # the functional side -------------------------------------------------------
    def _functional(self, now: float) -> None:
        """Every flow's packets served since the last slice, as trains, now."""
        pieces = []
        for flow in self.flows:
            count = int(flow.served + EPSILON) - flow.done
            if count <= 0:
                continue
            horizon = flow.memory.horizon
            if horizon is not None:  # cut where its token bucket could fill up, in time order
                span = now - flow.last_train
                cuts = max(min(count, math.ceil(span / horizon - EPSILON)), 1)
                pieces += [(flow.last_train + span * (i + 1) / cuts, flow, count * (i + 1) // cuts - count * i // cuts)
                           for i in range(cuts)]
            elif not flow.memory.settled or count >= SETTLED_TRAIN or \
                    now - flow.last_train >= SETTLED_AGE - EPSILON * SLICE:
                pieces.append((now, flow, count))
        pieces.sort(key=lambda piece: piece[0])
        self._egress(pieces[0][0] if pieces else now)
        for when, flow, count in pieces:
            if count:
                self._serve(flow, count, when)

    def _serve(self, flow: Flow, count: int, now: float) -> None:
        """`count` packets its RX queue served: those its CPU's backlog dropped since
        its last train are lost there, the rest run as a train."""
        lost = min(int(flow.backlog_lost + EPSILON) - flow.backlog_dropped, count)
        if lost > 0:
            flow.backlog_dropped += lost
            flow.done += lost
            self.kernel.softnet[flow.queue.cpu].dropped += lost  # enqueue_to_backlog()'s sd->dropped
            where = (Stage.NIC_RX, DropReason.CPU_BACKLOG, "enqueue_to_backlog")
            self.prober.losses[where] += lost
            self.prober.paths[f"NIC_RX[{flow.queue.port}] -> netif_rx on cpu{flow.queue.cpu} > DROP "
                              f"{DropReason.CPU_BACKLOG} at {Stage.NIC_RX} in enqueue_to_backlog"] += lost
        if count > lost:
            self._train(flow, count - lost, now)

    def _clock(self, now: float) -> None:
        clock = self.kernel.clock
        if self.start + now > clock.now:
            clock.advance(self.start + now - clock.now)

    def _train(self, flow: Flow, count: int, now: float) -> None:
        self._clock(now)
        kernel = self.kernel
        bpf = kernel.bpf
        kernel.this_cpu = flow.queue.cpu  # the queue's softirq: its softnet_data counts what reaches the stack
        if bpf is not None:
            bpf.cpu = flow.queue.cpu
        spent = [0.0, 0, 0]  # cost, packets, frames transmitted
        queued_before = sum(sd.input_queue_tail for sd in kernel.softnet)

        def tally(outcome: Outcome, times: int, bulk: bool) -> None:
            spent[0] += outcome.ns * times
            spent[1] += times
            for port, frame, skb, queued in outcome.outputs:
                dev = kernel.dev_by_name(port)
                flow.tx_port, flow.tx_time = port, l1_bits(len(frame)) / (dev.speed * 1e6)
                spent[2] += times
                if queued is None:
                    self._received(port, flow.run, len(frame), times)
                elif bulk:
                    self._schedule_egress(dev, skb, times, flow, outcome.path, queued, now)
                else:
                    self.owners[skb] = flow.run
                    took = self.qdisc_answers.setdefault(flow, [0, 0])
                    took[0] += queued
                    took[1] += 1

        try:
            self.prober.run(flow.queue.port, flow.frame, count, tally, flow.memory)
        finally:
            kernel.this_cpu = 0
            if bpf is not None:
                bpf.cpu = 0
        flow.done += count
        flow.last_train = now
        flow.cost = spent[0] / spent[1] * 1e-9
        flow.delivered = spent[2] / spent[1]
        flow.backlog_passes = (sum(sd.input_queue_tail for sd in kernel.softnet) - queued_before) / count
        if flow.backlog_passes and flow not in self.via_backlog:
            self.via_backlog.append(flow)

    def _received(self, port: str, run: StreamRun, length: int, times: int) -> None:
        """`times` frames of `length` bytes left `port` for its tester port."""
        stats = self.port_stats.setdefault(port, PortStats())
        stats.ipackets += times
        stats.ibytes += length * times
        run.stats.ipackets += times
        run.stats.ibytes += length * times

    # egress through qdiscs that queue ------------------------------------------------
    def _schedule_egress(self, dev, skb, times: int, flow: Flow, path: str, queued: bool, now: float) -> None:
        """A train's packets for a qdisc that queues reach it spread over the next
        slice, in EGRESS_PIECES, each after the port sent what it could by then
        (its queue limits act on packets as they come, not on a whole slice at
        once). They were counted on the path of their probe, which the qdisc took
        (`queued`) or dropped: the qdisc's answer for each piece moves them."""
        pieces = min(times, EGRESS_PIECES)
        for i in range(pieces):
            count = times * (i + 1) // pieces - times * i // pieces
            clone = skb_clone(skb)
            clone.journey = None
            heapq.heappush(self.egress, (now + SLICE * i / pieces, next(self.egress_order), dev, clone, count, flow,
                                         path, queued))

    def _egress(self, until: float) -> None:
        """Queue the scheduled trains and let every port send from its qdisc up to `until`."""
        egress = self.egress
        while egress and egress[0][0] <= until:
            when, _, dev, skb, count, flow, path, queued = heapq.heappop(egress)
            self._send(dev, when)
            q = dev.qdisc
            self.owners[skb] = flow.run
            accepted = q.enqueue(skb, count, when)
            took = self.qdisc_answers.setdefault(flow, [0, 0])
            took[0] += accepted
            took[1] += count
            if queued and accepted < count:
                self._qdisc_verdicts(dev, q, path, count - accepted, True)
            elif not queued and accepted:
                self._qdisc_verdicts(dev, q, path, accepted, False)
        for dev in list(self.queueing.values()):
            self._send(dev, until)
        for flow, (accepted, offered) in self.qdisc_answers.items():
            flow.qdisc_took = accepted / offered
        self.qdisc_answers.clear()
        if until != math.inf and until > self.egress_until:
            for name, dev in self.queueing.items():
                # what waits in the qdisc, at the pace the port sent it over the last PACE_SLICES
                window = self.pace.setdefault(name, deque(maxlen=PACE_SLICES))
                window.append((until - self.egress_until, self.sent_bytes.pop(name, 0)))
                sent = sum(sent for _, sent in window)
                pace = sent / sum(seconds for seconds, _ in window) if sent else dev.speed * 1e6 / 8
                self.tx_backlog[name] = dev.qdisc.backlog / pace if dev.qdisc.qlen else 0.0
            self.egress_until = until

    def _qdisc_verdicts(self, dev, q, path: str, packets: int, dropped: bool) -> None:
        """`packets` of a train the qdisc answered otherwise than its probe: dropped
        (their path ends at the qdisc) or taken (it goes on to the port)."""
        reason = q.drop_reason or DropReason.QDISC_DROP
        sent = f"{q.enqueue_hop} > {self.kernel.nics[dev.name].tx_hop}"
        drop = f"{q.drop_hop} > DROP {reason} at {Stage.QDISC} in {DROP_LOCATION}"
        paths, losses = self.prober.paths, self.prober.losses
        moved = path.replace(sent, drop) if dropped else path.replace(drop, sent)
        paths[path] -= packets
        paths[moved] += packets
        losses[(Stage.QDISC, reason, DROP_LOCATION)] += packets if dropped else -packets

    def _send(self, dev, until: float) -> None:
        """The port sends from its qdisc at line rate up to `until`: each train as
        many packets as the qdisc lets go when the link is free and as fit by then."""
        q = dev.qdisc
        self.queueing[dev.name] = dev
        line_bps = dev.speed * 1e6
        free = self.link_free.get(dev.name, 0.0)
        sent = 0
        while free <= until:
            head = q.peek(free)
            if head is None:
                if q.qlen:
                    q.dequeue(free)  # throttled: the dequeue fails (a shaper counts an overlimit)
                wake = q.next_event(free)
                if wake is None or wake > until or wake <= free:
                    break
                free = wake
                continue
            seconds = l1_bits(head[0].len) / line_bps
            most = (1 << 62) if until == math.inf else int((until - free) / seconds) + 1
            got = q.dequeue(free, most)
            if got is None:
                continue
            skb, count = got
            free += count * seconds
            sent += skb.len * count
            dev.stats.tx_packets += count
            dev.stats.tx_bytes += skb.len * count
            self._received(dev.name, self.owners[skb], skb.len, count)
        self.link_free[dev.name] = max(free, until if until != math.inf else free)
        self.sent_bytes[dev.name] = self.sent_bytes.get(dev.name, 0) + sent

    def _drain_tx(self, seconds: float) -> None:
        """Each noqueue port sends what the interval gave it at line rate; the rest waits."""
        for port, sent in self.tx_sent.items():
            self.tx_backlog[port] = max(self.tx_backlog.get(port, 0.0) + sent - seconds, 0.0)
        self.tx_sent = {}

    def _finish(self, now: float) -> float:
        """The rings have drained: whole packets for each flow, the rest of each
        flow through the kernel, the ring and softnet counters, the qdiscs
        emptied; returns when the last packet left."""
        kernel = self.kernel
        for flow in self.flows:
            missed = min(round(flow.missed), flow.arrivals - flow.done)
            flow.missed = missed
            rest = flow.arrivals - missed - flow.done
            if rest > 0:
                self._serve(flow, rest, now)
            flow.served = flow.done
        for queue in self.queues:
            nic = kernel.nics[queue.port]
            stats = nic.rx_queue(queue.index)
            missed = sum(int(f.missed) for f in queue.flows)
            stats.packets += sum(f.done for f in queue.flows)
            stats.bytes += sum(f.done * len(f.frame) for f in queue.flows)
            stats.drops += missed
            nic.dev.stats.rx_missed_errors += missed
        for cpu, squeezed in enumerate(self.squeeze):
            kernel.softnet[cpu].time_squeeze += int(squeezed)
        self._egress(math.inf)
        end = max([now, *self.link_free.values()])
        self._clock(end)
        return end

    # the result --------------------------------------------------------------
    def _result(self, duration: float, end: float) -> Result:
        """TX rates over the time the streams sent, RX rates until the DUT drained."""
        result = Result("mock", duration)
        drained = max(end, duration)
        for name, stats in sorted(self.port_stats.items()):
            result.ports[name] = stats
            if duration:
                stats.set_rates(duration, drained)
        for run in self.runs:
            stats = run.stats
            if duration:
                stats.set_rates(duration, drained)
            if run.recorder is not None:
                stats.latency = run.recorder.stats()
            result.streams[stats.id] = stats
        missed: dict[str, int] = {}
        for flow in self.flows:
            missed[flow.queue.port] = missed.get(flow.queue.port, 0) + int(flow.missed)
        for port, packets in sorted(missed.items()):
            if packets:
                where = f"{port} rx_missed_errors"
                result.losses.append(Loss(Stage.NIC_RX, DropReason.FULL_RING.name, where, packets))
                result.paths.append((f"NIC_RX[{port}] -> MISSED > DROP {DropReason.FULL_RING} at NIC_RX in {where}",
                                     packets))
        for (stage, reason, where), packets in self.prober.losses.items():
            result.losses.append(Loss(str(stage), str(reason), where, packets))
        result.paths += sorted(self.prober.paths.items(), key=lambda item: -item[1])
        for cpu, busy in enumerate(self.busy):
            if busy and end:
                result.notes.append(f"cpu{cpu}: softirq busy {busy / end:.1%} of {end * 1e3:.3f} ms (virtual)")
        result.notes += self.notes
        result.notes.append(f"{self.prober.probes} packets ran the functional path, the rest went in trains")
        return result
