"""Measure the XDP paper's tests on a target into the runs file that the cost
model's calibration fits (harness/mockkernel/linerate/calibrate.py):

    python -m harness.mockkernel.linerate.calibrate measure --target dut|mock -o RUNS.json
        [--anchors NAME ...] [--duration S]

For each anchor (anchors.py; all by default) a fresh target is set up as the
anchor's DUT and offered the anchor's 64-byte frames on p0 at the most its
generator offers (`traffic_caps()`) for `--duration` seconds, one trial. The run's
rate is the packets the DUT processed per second of the trial (Result.duration):
those the tester received back plus those the target reports lost where the
anchor's packets end (Result.losses at the stage of the journey's drop: XDP for
xdp_drop, NF_PREROUTING for iptables_raw_drop, NF_INPUT for filter_drop; on the
lab those are the kfree_skb drop counts, or the dropping nft rule's counter
without bpftrace). Packets the NIC ring missed or the backlog refused do not
count. The mock's ports run at 100 Gb/s so that its one core, not the line,
limits every anchor. An NDR search (harness/rfc2544.py) would say nothing here:
a drop anchor loses every packet at any rate. `counts` come from the mock's
journey of the same setup (its second packet: the first may take a path of its
own), as cost.path_counts() reads them. A run that processed all it was offered
did not load its core to the full: the command says so, and its rate is a lower
bound.

On the netns lab the DUT has no NIC: veth_xmit() (drivers/net/veth.c) runs the
DUT's receive path in the generator's own thread, on this machine's CPUs that the
generator (and every other process) shares, so a trial's rate is what one core
does sending AND processing, and it varies with the machine's load. A profile
fitted to it describes this lab, not a DUT fed by a NIC: it compares the mock
with the lab, it does not predict hardware.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import bpf_build
from harness.mockkernel.linerate.anchors import ANCHORS, Anchor, base_dut, frame
from harness.mockkernel.linerate.cost import path_counts
from harness.mockkernel.target import MockTarget
from harness.target import Target
from harness.traffic import Profile, Rate, Result, Stream, l1_bits

MEASURE_SECONDS = 1.0  # one trial per anchor: virtual on the mock, wall on the lab
MOCK_LINK_MBPS = 100_000  # the mock's ports while measuring: its core, not the line, limits every anchor
FULL_LOAD = 0.99  # a run processing this share of what it was offered did not load its core to the full
LAB_CAVEAT = ("netns lab: the DUT's receive path runs in the generator's thread on this machine's shared CPUs, "
              "so these rates describe the lab (generator and DUT on one core), not a DUT fed by a NIC")


def anchor_path(anchor: Anchor, objects) -> tuple[dict[str, float], str | None]:
    """What a packet of the anchor pays on the mock (its second packet's journey)
    and the stage where its path drops it (None: it leaves the DUT)."""
    target = MockTarget()
    base_dut(target)
    anchor.configure(target, objects)
    target.send("p0", [frame(anchor.dst)] * 2)
    journey = target.journeys()[-1]
    return path_counts(journey, target.kernel), None if journey.drop is None else str(journey.drop.stage)


def processed_pps(result: Result, drop_stage: str | None) -> float:
    """Packets the DUT processed per second of the trial: received back by the
    tester, or lost at the stage where the anchor's path drops them."""
    received = sum(stats.ipackets for stats in result.ports.values())
    dropped = sum(loss.packets for loss in result.losses if loss.stage == drop_stage)
    return (received + dropped) / result.duration


def measure(target: Target, anchor: Anchor, objects, seconds: float = MEASURE_SECONDS) -> tuple[dict, float]:
    """The anchor's run on `target` (fresh: set up here) as calibrate.py reads it,
    and the rate it was offered."""
    counts, drop_stage = anchor_path(anchor, objects)
    if isinstance(target, MockTarget):
        for port in ("p0", "p1"):
            target.sh(f"ethtool -s {port} speed {MOCK_LINK_MBPS} duplex full autoneg off")
    base_dut(target)
    anchor.configure(target, objects)
    caps = target.traffic_caps()
    sent = frame(anchor.dst)
    offered = min(caps.max_pps, caps.max_bps_L1 / l1_bits(len(sent)))
    result = target.traffic(Profile((Stream.of("p0", sent, rate=Rate(offered)),)), duration=seconds)
    pps = processed_pps(result, drop_stage)
    ends = f"dropped at {drop_stage}" if drop_stage else "sent back to the tester"
    config = (f"{anchor.name} (anchors.py; the paper: {anchor.paper}) on {target.name}: {offered:,.0f} pps of "
              f"64-byte frames to {anchor.dst} for {seconds:g} s, {pps:,.0f} pps processed ({ends})")
    return {"name": anchor.name, "config": config, "counts": counts, "pps_per_core": pps}, offered


def make_target(name: str) -> Target:
    if name == "mock":
        return MockTarget()
    from harness.drivers.dut import NetnsTarget  # the lab's drivers only when measuring on it
    return NetnsTarget()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.mockkernel.linerate.calibrate measure",
                                     description="Measure the XDP paper's tests on a target into a runs file.")
    parser.add_argument("--target", choices=("mock", "dut"), required=True)
    parser.add_argument("-o", "--output", metavar="RUNS.json", required=True)
    parser.add_argument("--anchors", nargs="+", choices=[a.name for a in ANCHORS], metavar="NAME",
                        default=[a.name for a in ANCHORS],
                        help=f"the tests to run (default all: {', '.join(a.name for a in ANCHORS)})")
    parser.add_argument("--duration", type=float, default=MEASURE_SECONDS, metavar="S",
                        help=f"seconds of each trial (default {MEASURE_SECONDS:g})")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    try:
        objects = bpf_build.Objects()
    except bpf_build.ToolchainMissing as err:
        print(f"calibrate measure: the anchors' XDP programs cannot be built: {err}", file=sys.stderr)
        return 1
    if args.target == "dut":
        print(f"note: {LAB_CAVEAT}", file=sys.stderr)
    runs = []
    for anchor in (a for a in ANCHORS if a.name in args.anchors):
        target = make_target(args.target)
        try:
            run, offered = measure(target, anchor, objects, args.duration)
        finally:
            target.close()
        runs.append(run)
        print(run["config"])
        if run["pps_per_core"] >= FULL_LOAD * offered:
            print(f"  {anchor.name}: the DUT processed all it was offered, its core may do more: "
                  "this rate is a lower bound", file=sys.stderr)
    document = {"target": args.target, "runs": runs}
    if args.target == "dut":
        document["note"] = LAB_CAVEAT
    Path(args.output).write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0
