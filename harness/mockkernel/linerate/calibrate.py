"""Fit the cost model's per-stage costs to measured runs:

    python -m harness.mockkernel.linerate.calibrate measure --target dut|mock -o RUNS.json
        [--anchors NAME ...] [--duration S]
    python -m harness.mockkernel.linerate.calibrate RUNS.json -o PROFILE.json

RUNS.json holds the runs measured on your DUT, one path each at the rate one
core sustains (the most a core forwards or drops with the NIC offering more):

    {"runs": [{"name": "xdp_drop", "config": "xdp_drop_udp.o on p0",
               "counts": {"driver_rx": 1, "xdp_prog": 1}, "pps_per_core": 24000000}, ...]}

`counts` is how many times a packet of the run pays each cost, as
cost.path_counts() reads them from the run's journeys (`run_from_journeys()`
averages them over a run's paths). A run of P pps per core spends 1e9 / P ns
per packet, so the costs c solve counts . c = 1e9 / P for every run: a linear
least-squares problem with c >= 0, solved by scipy.optimize.nnls. Residuals
are relative (a run at 24 Mpps weighs as much as one at 1.4 Mpps).

A few runs cannot tell every cost apart (the NIC's receive cost always comes
with some verdict), so the fit also pulls each cost towards a prior profile
(the default, or --prior), by --prior-weight per relative deviation: costs
the runs determine follow the runs, the rest keep the prior's ratios. With
--prior-weight 0 the fit is plain non-negative least squares over the costs
the runs exercise. Costs no run exercises keep the prior's value. The fit's
residuals per run and the costs it changed are printed; `--cost-profile
PROFILE.json` makes the mock's line-rate runs use the result.

`measure` (harness/calibration.py) writes RUNS.json from the mock or the netns
lab: the XDP paper's tests (anchors.py), each a short trial at the most the
target's generator offers, with counts from the mock's journeys. On the lab the
generator and the DUT share this machine's CPUs (veth runs the DUT's receive
path in the sender's thread), so a profile fitted to it describes the lab, not a
DUT fed by a NIC.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from harness.journey import Journey
from harness.mockkernel.linerate.cost import COST_NAMES, CostModel, CostProfileError, path_counts, read_json

DEFAULT_PRIOR_WEIGHT = 1e-6


class RunsError(ValueError):
    """A runs file that cannot be fitted; the message names the run and why."""


@dataclass(frozen=True)
class Run:
    name: str
    counts: dict[str, float]  # cost name: times a packet pays it
    pps_per_core: float
    config: str = ""

    def ns_per_packet(self) -> float:
        return 1e9 / self.pps_per_core

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config, "counts": self.counts, "pps_per_core": self.pps_per_core}

    @classmethod
    def from_dict(cls, data: dict, index: int) -> Run:
        name = data.get("name", f"run {index}") if isinstance(data, dict) else f"run {index}"
        try:
            counts, pps = data["counts"], float(data["pps_per_core"])
        except (KeyError, TypeError, ValueError) as err:
            raise RunsError(f"{name}: needs \"counts\" (cost name: times) and \"pps_per_core\" ({err!r})") from None
        unknown = [n for n in counts if n not in COST_NAMES]
        if unknown:
            raise RunsError(f"{name}: unknown costs {', '.join(unknown)} (have: {', '.join(COST_NAMES)})")
        if not pps > 0 or not any(counts.values()):
            raise RunsError(f"{name}: a run needs a positive pps_per_core and a path that pays some cost")
        return cls(name, {n: float(v) for n, v in counts.items()}, pps, data.get("config", ""))


def run_from_journeys(name: str, journeys: list[tuple[Journey, int]], pps_per_core: float, kernel=None,
                      config: str = "") -> Run:
    """A run whose packets took these paths (journey, packets that took it):
    the counts of a packet on average."""
    total = sum(packets for _, packets in journeys)
    counts: dict[str, float] = {}
    for journey, packets in journeys:
        for cost, times in path_counts(journey, kernel).items():
            counts[cost] = counts.get(cost, 0.0) + times * packets / total
    return Run(name, counts, pps_per_core, config)


def load_runs(path: str | Path) -> list[Run]:
    data = read_json(path, "runs file", RunsError)
    runs = data.get("runs") if isinstance(data, dict) else None
    if not runs:
        raise RunsError(f"runs file {path}: no \"runs\" list")
    return [Run.from_dict(run, i) for i, run in enumerate(runs)]


@dataclass
class Fit:
    model: CostModel
    runs: list[Run]
    kept: list[str] = field(default_factory=list)  # costs no run exercises: the prior's

    def model_pps(self, run: Run) -> float:
        ns = sum(self.model.costs[name] * times for name, times in run.counts.items())
        return 1e9 / ns if ns > 0 else math.inf

    def residuals(self) -> list[tuple[Run, float, float]]:
        """(run, model pps, relative error of the model against the measurement)."""
        return [(run, pps, pps / run.pps_per_core - 1) for run in self.runs for pps in (self.model_pps(run),)]


def fit(runs: list[Run], prior: CostModel, prior_weight: float = DEFAULT_PRIOR_WEIGHT, name: str = "") -> Fit:
    """The non-negative costs that best explain the runs (see the module docstring)."""
    exercised = [n for n in COST_NAMES if any(run.counts.get(n) for run in runs)]
    fitted = [n for n in exercised if prior_weight == 0 or prior.costs[n] > 0]
    rows = [[run.counts.get(n, 0.0) / run.ns_per_packet() for n in fitted] for run in runs]
    target = [1.0] * len(runs)
    if prior_weight > 0:
        scale = math.sqrt(prior_weight)
        for i, n in enumerate(fitted):
            rows.append([scale / prior.costs[n] if j == i else 0.0 for j in range(len(fitted))])
            target.append(scale)
    solution, _ = nnls(np.array(rows), np.array(target))
    costs = dict(prior.costs)
    costs.update({n: round(float(ns), 3) for n, ns in zip(fitted, solution)})
    if prior_weight > 0:  # a cost the prior sets to 0 stays 0: the pull towards it has no scale
        costs.update({n: 0.0 for n in exercised if n not in fitted})
    kept = [n for n in COST_NAMES if n not in exercised]
    return Fit(CostModel(costs, name), runs, kept)


def report(result: Fit, prior: CostModel) -> str:
    lines = [f"{'run':<24} {'measured pps':>14} {'model pps':>14} {'residual':>9}"]
    for run, pps, error in result.residuals():
        lines.append(f"{run.name:<24} {run.pps_per_core:>14,.0f} {pps:>14,.0f} {error:>+9.2%}")
    squares = [error ** 2 for _, _, error in result.residuals()]
    lines.append(f"rms relative residual {math.sqrt(sum(squares) / len(squares)):.2%} over {len(squares)} runs")
    lines.append(f"{'cost':<24} {'prior ns':>10} {'fitted ns':>10}")
    for n in COST_NAMES:
        if n not in result.kept:
            lines.append(f"{n:<24} {prior.costs[n]:>10.3f} {result.model.costs[n]:>10.3f}")
    if result.kept:
        lines.append(f"kept from the prior (no run exercises them): {', '.join(result.kept)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["measure"]:
        from harness import calibration  # measuring drives targets: above the model, which it must not import
        return calibration.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m harness.mockkernel.linerate.calibrate",
                                     description="Fit the mock's per-stage CPU costs to measured runs.")
    parser.add_argument("runs", metavar="RUNS.json", help="measured runs: counts per packet and pps per core")
    parser.add_argument("-o", "--output", metavar="PROFILE.json", required=True,
                        help="the cost profile to write (load it with --cost-profile)")
    parser.add_argument("--prior", metavar="PROFILE.json",
                        help="the profile to start from (default: the XDP paper's calibration)")
    parser.add_argument("--prior-weight", type=float, default=DEFAULT_PRIOR_WEIGHT,
                        help=f"pull towards the prior per relative deviation (default {DEFAULT_PRIOR_WEIGHT}; "
                             "0: plain non-negative least squares)")
    parser.add_argument("--name", default="", help="the profile's name (default: the runs file's)")
    args = parser.parse_args(argv)
    if args.prior_weight < 0:
        parser.error("--prior-weight must not be negative")
    try:
        prior = CostModel.load(args.prior) if args.prior else CostModel.default()
        runs = load_runs(args.runs)
    except (CostProfileError, RunsError) as err:
        print(f"calibrate: {err}", file=sys.stderr)
        return 1
    result = fit(runs, prior, args.prior_weight, args.name or f"fitted to {args.runs}")
    print(report(result, prior))
    result.model.save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
