"""RFC 2544 benchmarks over `Target.traffic()`, the same on every target.

Per frame size (RFC 2544 section 9.1: 64, 128, 256, 512, 1024, 1280, 1518 bytes
with FCS) one stream into a DUT port gives:

- throughput (26.1) as NDR (loss ratio 0) and PDR (loss ratio 0.5% by default),
  searched by MLRsearch (PyPI `MLRsearch`, FD.io CSIT's implementation of the IETF
  BMWG MLRsearch draft) through `TrafficMeasurer`, its `AbstractMeasurer`;
- latency (26.2) in one trial at each found rate, from the payload tags;
- the frame loss rate curve (26.3): trials from the maximum rate down in 10%
  steps until two successive trials lose nothing;
- back-to-back (26.4): the longest burst at the maximum rate forwarded without
  loss, by bisection on the burst length, repeated and averaged.

The maximum rate of a frame size is the line rate of the tester port as the
target's generator declares it (`TrafficCaps.max_bps_L1` at L1), capped by the
generator's packet rate (`TrafficCaps.max_pps`). Every trial, search or not, is
kept in the report with the target's whole Result.

Defaults follow RFC 2544 where this harness can afford it and say where not:
one trial classifies a load (exceed ratio 0, duration sum one trial) and trials
last 1 s, where RFC 2544 asks 60 s for throughput and 120 s for latency; the
back-to-back trial is 2 s of line rate and is repeated 50 times (26.4).

    python -m harness.rfc2544 --target mock|dut [--sizes 64 1518] [--conntrack] [--out DIR]

runs the forwarding scenario (p0 -> p1, optionally through conntrack) and prints
the tables; with `--out` it also writes report.txt, report.json and the plots.
A progress bar (harness/progress.py: rich, on stderr) shows once a campaign has
run a few seconds, when stderr is a terminal; `--progress` / `--no-progress` (or
PJ_PROGRESS=1/0) force it, and the bars of its trials, on or off.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from MLRsearch import (AbstractMeasurer, Config, GoalResult, MeasurementResult, MultipleLossRatioSearch,
                       SearchGoal)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from harness.progress import ProgressBar
from harness.target import PORTS, Port, Target
from harness.traffic import (FCS_LEN, LatencyStats, Mode, Profile, Rate, RateUnit, Result, Stream, TAG_LEN,
                             l1_bits)

FRAME_SIZES = (64, 128, 256, 512, 1024, 1280, 1518)  # with FCS (RFC 2544 section 9.1)


class Phase(StrEnum):
    SEARCH = "throughput search"
    LATENCY = "latency"
    LOSS_CURVE = "frame loss rate"
    BACK_TO_BACK = "back-to-back"


PHASES = (Phase.SEARCH, Phase.LATENCY, Phase.LOSS_CURVE, Phase.BACK_TO_BACK)


@dataclass(frozen=True)
class Settings:
    """What a campaign runs and how long; loads in packets per second."""

    phases: tuple[Phase, ...] = PHASES
    pdr_loss_ratio: float = 0.005
    relative_width: float = 0.005  # MLRsearch's goal width: bounds this close (of the upper) end the search
    trial_duration: float = 1.0
    min_load: float = 1000.0
    max_load: float | None = None  # None: the port's line rate for the frame size, capped by the generator
    search_duration_max: float = 600.0  # wall seconds before MLRsearch gives up
    rate_tolerance: float = 0.02  # a trial's streams may run this much longer than asked before the lag is loss
    latency_duration: float = 1.0
    loss_curve_step: float = 0.1  # of the maximum rate
    b2b_duration: float = 2.0  # the longest burst tried: this long at the maximum rate (26.4: >= 2 s)
    b2b_repeats: int = 50
    b2b_resolution: int = 1  # frames: bisection stops when the bounds are this close

    def goals(self) -> tuple[SearchGoal, SearchGoal]:
        """NDR and PDR as MLRsearch goals: one trial of `trial_duration` decides a load;
        a minimum load that loses leaves the goal without a lower bound (reported as
        such) rather than ending the campaign."""
        common = dict(exceed_ratio=0.0, relative_width=self.relative_width,
                      initial_trial_duration=self.trial_duration, final_trial_duration=self.trial_duration,
                      duration_sum=self.trial_duration, preceding_targets=2, fail_fast=False)
        return SearchGoal(loss_ratio=0.0, **common), SearchGoal(loss_ratio=self.pdr_loss_ratio, **common)


@dataclass
class Trial:
    """One run of the stream: what was asked (load, duration or burst count) and
    what the target answered, counted after the DUT drained."""

    phase: str
    frame_size: int
    load_pps: float
    duration: float  # intended seconds; a burst's own length at load_pps
    intended: int  # packets the trial should have sent
    offered: int  # packets the generator sent (opackets)
    received: int  # packets back at the tester (ipackets)
    result: Result

    @property
    def lost(self) -> int:
        return self.offered - self.received

    @property
    def loss_ratio(self) -> float:
        """Lost and unsent packets over the intended (or offered, if more) count."""
        return self.measurement().loss_ratio

    def measurement(self) -> MeasurementResult:
        """The trial as MLRsearch reads it."""
        return MeasurementResult(intended_duration=self.duration, intended_load=self.load_pps,
                                 intended_count=self.intended, offered_count=self.offered,
                                 forwarding_count=self.received)

    def latency(self) -> LatencyStats | None:
        return next((s.latency for s in self.result.streams.values() if s.latency is not None), None)


class TrafficMeasurer(AbstractMeasurer):
    """MLRsearch's measurer on `target.traffic()`: a trial sends `stream` at the
    intended load for the intended duration and counts what came back.

    Loss is counted only after the DUT drained: Target.traffic() returns once
    nothing the trial sent is still queued or in flight in the DUT (the
    ndr_bench flaw counted packets in flight as lost), so offered - received is
    loss, never backlog. Packets the generator did not send count as loss too,
    through MeasurementResult's intended_count: those missing from the trial
    (by a packet or more), and those it did not send in time, when the streams
    ran longer than the trial by more than `rate_tolerance` (a generator that
    falls behind stretches the trial: Result.duration is how long it sent, and
    the load over that time is what it should have sent).
    Every trial is appended to `trials`, in the order run, and passed to
    `on_trial`.
    """

    def __init__(self, target: Target, stream: Stream, frame_size: int,
                 on_trial: Callable[[Trial], None] | None = None, rate_tolerance: float = 0.02) -> None:
        self.target = target
        self.stream = stream
        self.frame_size = frame_size
        self.rate_tolerance = rate_tolerance
        self.phase = Phase.SEARCH
        self.trials: list[Trial] = []
        self.on_trial = on_trial

    def measure(self, intended_duration: float, intended_load: float) -> MeasurementResult:
        return self.run(intended_load, duration=intended_duration).measurement()

    def run(self, load_pps: float, duration: float | None = None, count: int | None = None,
            latency: bool = False) -> Trial:
        """One trial: continuous for `duration` seconds, or a single burst of `count` packets."""
        rate = Rate(load_pps, RateUnit.PPS)
        if count is None:
            stream = dataclasses.replace(self.stream, rate=rate, mode=Mode.CONTINUOUS, latency=latency)
        else:
            stream = dataclasses.replace(self.stream, rate=rate, mode=Mode.SINGLE_BURST, count=count,
                                         latency=latency)
            intended, duration = count, count / load_pps
        result = self.target.traffic(Profile((stream,)), duration=None if count else duration)
        sent = result.streams[stream.id]
        if result.duration > duration * (1 + self.rate_tolerance):
            # the generator fell behind the load: what it did not send in time is unsent
            intended = round(load_pps * result.duration)
        elif count is None:
            due = load_pps * duration
            # a generator rounds the trial to whole packets, either way: that is not loss
            intended = sent.opackets if abs(sent.opackets - due) < 1 else round(due)
        trial = Trial(self.phase, self.frame_size, load_pps, duration, intended, sent.opackets, sent.ipackets,
                      result)
        self.trials.append(trial)
        if self.on_trial:
            self.on_trial(trial)
        return trial


@dataclass
class Throughput:
    """A search goal's outcome: the relevant bounds MLRsearch found (None when the
    minimum load already failed, or the maximum passed), its conditional
    throughput, and the latency measured at the lower bound."""

    loss_ratio: float
    lower_pps: float | None
    upper_pps: float | None
    conditional_pps: float | None
    latency: LatencyStats | None = None


@dataclass
class SizeReport:
    frame_size: int
    max_pps: float  # the maximum rate trials start from
    ndr: Throughput | None = None
    pdr: Throughput | None = None
    loss_curve: list[tuple[float, float, float]] = field(default_factory=list)  # (% of max, pps, loss ratio)
    back_to_back: list[int] = field(default_factory=list)  # longest lossless burst, per repeat
    back_to_back_capped: bool = False  # the longest burst tried lost nothing: b2b is at least that
    trials: list[Trial] = field(default_factory=list)


@dataclass
class Report:
    target: str
    scenario: str
    settings: Settings
    sizes: list[SizeReport] = field(default_factory=list)

    def trials(self) -> list[Trial]:
        return [trial for size in self.sizes for trial in size.trials]

    def table(self) -> str:
        """Every table of the campaign, then every trial."""
        return "\n\n".join(part for part in (self.throughput_table(), self.latency_table(), self.loss_curve_table(),
                                             self.back_to_back_table(), self.trials_table()) if part)

    def throughput_table(self) -> str:
        rows = [(s.frame_size, s.max_pps, goal) for s in self.sizes for goal in (s.ndr, s.pdr) if goal]
        if not rows:
            return ""
        lines = [f"RFC 2544 throughput (26.1) on {self.target}{self.scenario and ', ' + self.scenario}: MLRsearch, "
                 f"relative width {self.settings.relative_width:g}",
                 f"{'frame':>5}  {'goal':>9}  {'lower pps':>12}  {'upper pps':>12}  {'cond. pps':>12}  "
                 f"{'Mbit/s L1':>10}  {'% max':>6}"]
        for size, max_pps, goal in rows:
            lower = goal.conditional_pps
            mbit = f"{lower * l1_bits(size - FCS_LEN) / 1e6:10.2f}" if lower else f"{'-':>10}"
            share = f"{100 * lower / max_pps:6.2f}" if lower else f"{'-':>6}"
            lines.append(f"{size:>5}  {_goal_name(goal.loss_ratio):>9}  {_pps(goal.lower_pps):>12}  "
                         f"{_pps(goal.upper_pps):>12}  {_pps(lower):>12}  {mbit}  {share}")
        return "\n".join(lines)

    def latency_table(self) -> str:
        rows = [(s.frame_size, goal) for s in self.sizes for goal in (s.ndr, s.pdr) if goal and goal.latency]
        if not rows:
            return ""
        lines = ["RFC 2544 latency (26.2) at the throughput found, microseconds",
                 f"{'frame':>5}  {'at':>9}  {'pps':>12}  {'min':>9}  {'avg':>9}  {'max':>9}  {'jitter':>9}"]
        for size, goal in rows:
            lat = goal.latency
            lines.append(f"{size:>5}  {_goal_name(goal.loss_ratio):>9}  {_pps(goal.lower_pps):>12}  "
                         f"{lat.min_us:9.2f}  {lat.avg_us:9.2f}  {lat.max_us:9.2f}  {lat.jitter_us:9.2f}")
        return "\n".join(lines)

    def loss_curve_table(self) -> str:
        sizes = [s for s in self.sizes if s.loss_curve]
        if not sizes:
            return ""
        lines = ["RFC 2544 frame loss rate (26.3), % of offered frames lost, by % of the maximum rate",
                 f"{'frame':>5}  " + "  ".join(f"{percent:>6.0f}%" for percent, _, _ in
                                               max((s.loss_curve for s in sizes), key=len))]
        for size in sizes:
            lines.append(f"{size.frame_size:>5}  " + "  ".join(f"{100 * loss:7.2f}" for _, _, loss in size.loss_curve))
        return "\n".join(lines)

    def back_to_back_table(self) -> str:
        sizes = [s for s in self.sizes if s.back_to_back]
        if not sizes:
            return ""
        lines = ["RFC 2544 back-to-back (26.4), frames in the longest burst at the maximum rate without loss",
                 f"{'frame':>5}  {'mean':>12}  {'min':>10}  {'max':>10}  {'repeats':>7}"]
        for size in sizes:
            b2b = size.back_to_back
            at_least = ">=" if size.back_to_back_capped else ""
            lines.append(f"{size.frame_size:>5}  {at_least + f'{sum(b2b) / len(b2b):.1f}':>12}  {min(b2b):>10}  "
                         f"{max(b2b):>10}  {len(b2b):>7}")
        return "\n".join(lines)

    def trials_table(self) -> str:
        lines = ["Trials, in the order run (loss counted after the DUT drained)",
                 f"{'#':>4}  {'frame':>5}  {'phase':<17}  {'load pps':>12}  {'seconds':>9}  {'sent in s':>9}  "
                 f"{'intended':>11}  {'offered':>11}  {'received':>11}  {'loss %':>8}"]
        for number, t in enumerate(self.trials(), 1):
            lines.append(f"{number:>4}  {t.frame_size:>5}  {t.phase:<17}  {t.load_pps:12.1f}  {t.duration:9.4f}  "
                         f"{t.result.duration:9.4f}  {t.intended:>11}  {t.offered:>11}  {t.received:>11}  "
                         f"{100 * t.loss_ratio:8.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"target": self.target, "scenario": self.scenario, "settings": dataclasses.asdict(self.settings),
                "sizes": [_size_dict(size) for size in self.sizes]}


def _size_dict(size: SizeReport) -> dict:
    out = {name: getattr(size, name) for name in ("frame_size", "max_pps", "loss_curve", "back_to_back",
                                                  "back_to_back_capped")}
    for name in ("ndr", "pdr"):
        goal = getattr(size, name)
        out[name] = goal and {**dataclasses.asdict(goal), "latency": goal.latency and dataclasses.asdict(goal.latency)}
    out["trials"] = [{"phase": t.phase, "load_pps": t.load_pps, "duration": t.duration, "intended": t.intended,
                      "offered": t.offered, "received": t.received, "result": t.result.to_dict()}
                     for t in size.trials]
    return out


def _goal_name(loss_ratio: float) -> str:
    return "NDR" if loss_ratio == 0 else f"PDR {100 * loss_ratio:g}%"


def _pps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def sized_frame(template: Packet, size: int) -> bytes:
    """`template` (Ether/IP/UDP) with its UDP payload sized so the frame is `size`
    bytes with FCS, IP and UDP lengths and checksums recomputed by scapy."""
    frame = template.copy()
    frame[UDP].remove_payload()
    for layer, names in ((IP, ("len", "chksum")), (UDP, ("len", "chksum"))):
        for name in names:
            setattr(frame[layer], name, None)
    payload = size - FCS_LEN - len(frame)
    if payload < TAG_LEN:
        raise ValueError(f"a {size}-byte frame leaves {payload} bytes of UDP payload after "
                         f"{template.summary()}: the latency tag needs {TAG_LEN}")
    return bytes(frame / Raw(bytes(payload)))


def max_load(target: Target, frame_size: int) -> float:
    """The maximum rate for `frame_size`: the port's L1 line rate as the
    generator declares it, capped by the generator's packet rate."""
    caps = target.traffic_caps()
    return min(caps.max_pps, caps.max_bps_L1 / l1_bits(frame_size - FCS_LEN))


def run(target: Target, port: Port, template: Packet, sizes: Iterable[int] = FRAME_SIZES,
        settings: Settings = Settings(), scenario: str = "", progress: bool | None = None) -> Report:
    """The campaign: for each frame size, the phases of `settings` with a stream of
    `template` sized to it into `port`. `progress`: None shows a bar when stderr
    is a terminal (PJ_PROGRESS=1/0 forces it), True/False force it."""
    report = Report(target.name, scenario, settings)
    sizes = tuple(sizes)
    with ProgressBar("RFC 2544", len(sizes) * len(settings.phases), "{completed}/{total} phases, {trials} trials",
                     progress) as bar:
        phases_done = 0

        def show(doing: str) -> None:
            bar.update(phases_done, f"RFC 2544 {doing}".rstrip(), trials=sum(len(s.trials) for s in report.sizes))

        for size in sizes:
            stream = Stream(port=port.name, frame=sized_frame(template, size))
            measurer = TrafficMeasurer(target, stream, size, rate_tolerance=settings.rate_tolerance,
                                       on_trial=lambda trial: show(f"{trial.frame_size} B {trial.phase}"))
            size_report = SizeReport(size, settings.max_load or max_load(target, size), trials=measurer.trials)
            report.sizes.append(size_report)
            for phase in settings.phases:
                measurer.phase = phase
                PHASE_RUNNERS[phase](measurer, size_report, settings)
                phases_done += 1
                show("")
    return report


def search_throughput(measurer: TrafficMeasurer, size: SizeReport, settings: Settings) -> None:
    """NDR and PDR in one MLRsearch run (the search serves both goals at once)."""
    config = Config()
    config.goals = settings.goals()
    config.min_load = settings.min_load
    config.max_load = size.max_pps
    config.search_duration_max = settings.search_duration_max
    config.warmup_duration = None
    found = MultipleLossRatioSearch(config=config).search(measurer)
    size.ndr, size.pdr = (_throughput(goal.loss_ratio, found[goal]) for goal in config.goals)


def _throughput(loss_ratio: float, found: GoalResult) -> Throughput:
    def pps(load) -> float | None:
        return None if load is None else float(load)
    return Throughput(loss_ratio, pps(found.relevant_lower_bound), pps(found.relevant_upper_bound),
                      pps(found.conditional_throughput))


def measure_latency(measurer: TrafficMeasurer, size: SizeReport, settings: Settings) -> None:
    """RFC 2544 26.2: one trial with timestamped frames at each throughput found."""
    for goal in (size.ndr, size.pdr):
        if goal is None:
            raise ValueError("latency is measured at the throughput found: run the throughput search first")
        if goal.lower_pps:
            goal.latency = measurer.run(goal.lower_pps, duration=settings.latency_duration, latency=True).latency()


def measure_loss_curve(measurer: TrafficMeasurer, size: SizeReport, settings: Settings) -> None:
    """RFC 2544 26.3: from 100% of the maximum rate down in steps, until two
    successive trials lose no frame (or the step reaches zero)."""
    steps = round(1 / settings.loss_curve_step)
    lossless_in_a_row = 0
    for step in range(steps, 0, -1):
        share = step / steps
        trial = measurer.run(size.max_pps * share, duration=settings.trial_duration)
        size.loss_curve.append((100 * share, trial.load_pps, trial.loss_ratio))
        lossless_in_a_row = lossless_in_a_row + 1 if trial.loss_ratio == 0 else 0
        if lossless_in_a_row == 2:
            return


def measure_back_to_back(measurer: TrafficMeasurer, size: SizeReport, settings: Settings) -> None:
    """RFC 2544 26.4: the longest burst at the maximum rate forwarded without loss,
    by bisection between a lossless and a lossy length, `b2b_repeats` times."""
    longest = max(1, round(size.max_pps * settings.b2b_duration))
    for _ in range(settings.b2b_repeats):
        if measurer.run(size.max_pps, count=longest).loss_ratio == 0:
            size.back_to_back.append(longest)
            size.back_to_back_capped = True
            continue
        lossless, lossy = 0, longest
        while lossy - lossless > settings.b2b_resolution:
            middle = (lossless + lossy) // 2
            if measurer.run(size.max_pps, count=middle).loss_ratio == 0:
                lossless = middle
            else:
                lossy = middle
        size.back_to_back.append(lossless)


PHASE_RUNNERS: dict[Phase, Callable[[TrafficMeasurer, SizeReport, Settings], None]] = {
    Phase.SEARCH: search_throughput,
    Phase.LATENCY: measure_latency,
    Phase.LOSS_CURVE: measure_loss_curve,
    Phase.BACK_TO_BACK: measure_back_to_back,
}


# the command line: the forwarding scenario ------------------------------------------

def forwarding_setup(conntrack: bool) -> list[str]:
    """p0 (10.0.0.1/24) forwards to h1 (10.0.1.2) on p1; with `conntrack`, an nft
    forward chain accepts by ct state so every packet is tracked."""
    t1 = PORTS[1]
    commands = ["sysctl -w net.ipv4.ip_forward=1", "ip addr add 10.0.0.1/24 dev p0",
                "ip addr add 10.0.1.1/24 dev p1",
                f"ip neigh replace 10.0.1.2 lladdr {t1.peer_mac} dev p1 nud permanent"]
    if conntrack:
        commands += ["nft add table ip bench",
                     "nft add chain ip bench forward { type filter hook forward priority 0 ; policy drop ; }",
                     "nft add rule ip bench forward ct state new,established accept"]
    return commands


def forwarding_frame() -> Packet:
    """h0 (10.0.0.2 behind p0) to h1 (10.0.1.2 behind p1), UDP."""
    p0 = PORTS[0]
    return Ether(src=p0.peer_mac, dst=p0.mac) / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=1024, dport=1024)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.rfc2544", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("mock", "dut"), default="mock")
    parser.add_argument("--lab", metavar="LAB.yaml", type=pathlib.Path,
                        help="with --target=dut: measure on the lab file's first station (its DUT over "
                             "SSH, its TRex generator) instead of the netns lab")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FRAME_SIZES), metavar="BYTES",
                        help="frame sizes with FCS (default: RFC 2544's seven)")
    parser.add_argument("--conntrack", action="store_true", help="forward through an nft ct state chain")
    parser.add_argument("--trial-duration", type=float, default=Settings.trial_duration, metavar="S")
    parser.add_argument("--b2b-repeats", type=int, default=Settings.b2b_repeats)
    parser.add_argument("--phases", nargs="+", type=Phase, choices=PHASES, default=list(PHASES))
    parser.add_argument("--out", type=pathlib.Path, metavar="DIR",
                        help="write report.txt, report.json and PNG plots here")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    args = parser.parse_args(argv)
    if args.lab and args.target != "dut":
        parser.error("--lab drives lab DUTs: use it with --target=dut")
    with _target(args.target, args.lab) as target:
        for command in forwarding_setup(args.conntrack):
            target.sh(command)
        settings = Settings(phases=tuple(args.phases), trial_duration=args.trial_duration,
                            latency_duration=args.trial_duration, b2b_repeats=args.b2b_repeats)
        scenario = "forwarding p0 -> p1" + (" through conntrack" if args.conntrack else "")
        report = run(target, target.ports[0], forwarding_frame(), args.sizes, settings, scenario, args.progress)
    print(report.table())
    if args.out:
        write(report, args.out)
        print(f"\nwritten to {args.out}/")
    return 0


def write(report: Report, out: pathlib.Path) -> None:
    """report.txt, report.json and the plots of `report` into directory `out`."""
    from harness.report import plots  # matplotlib only when plots are written
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text(report.table() + "\n")
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    for name, png in plots.report_pngs(report).items():
        (out / name).write_bytes(png)


@contextlib.contextmanager
def _target(name: str, lab_file: pathlib.Path | None) -> Iterator[Target]:
    """The backend named on the command line, closed at the end; a lab station is
    claimed, set up and released around it."""
    if lab_file is None:
        target = _make_target(name)
        try:
            yield target
        finally:
            target.close()
        return
    from harness import labfile
    from harness.drivers.lab import LabTarget, Station
    with contextlib.ExitStack() as stack:
        claim = stack.enter_context(labfile.claim_station(labfile.load_lab(lab_file), None))
        station = Station(claim.station, lab_file)
        stack.callback(station.close)
        target = LabTarget(station)
        stack.callback(target.close)
        yield target


def _make_target(name: str) -> Target:
    if name == "mock":
        from harness.mockkernel.target import MockTarget  # the backend named on the command line only
        return MockTarget()
    from harness.drivers.dut import NetnsTarget  # the backend named on the command line only
    return NetnsTarget()


if __name__ == "__main__":
    sys.exit(main())
