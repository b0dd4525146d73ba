"""The cost model's calibration anchors through the line-rate engine (mock.linerate_*: linerate.py).

model.NAME (Mpps): each of the XDP paper's single-core 64-byte tests
(harness/mockkernel/linerate/anchors.py: the paper's figure, the DUT's
program or rules) through MockTarget.traffic() with the default cost profile:
p0 and p1 at 100 Gb/s, one RX queue and so one CPU, p0 offered 100% of line
rate (148.8 Mpps) for ANCHOR_SECONDS of virtual time. The figure is what that
CPU handled per second: the packets offered less those the RX ring missed
(the ring's 256 packets at the end, drained, add under 0.1%). The paper's
figure and the deviation go to stderr. routing_fulltable runs with
anchors.FULL_TABLE_STANDIN routes, not the paper's 752,138: the mock's FIB is
linear (issue 12) and the cost model charges the lookup by the log of the
table it finds, so that figure is above the paper's.
"""
from __future__ import annotations

import sys

from harness import bpf_build
from harness.journey import Stage
from harness.mockkernel.linerate.anchors import ANCHORS, Anchor, base_dut, frame
from harness.mockkernel.target import MockTarget
from harness.traffic import Profile, Stream

ANCHOR_SECONDS = 0.2  # virtual: the ring's last contents are under 0.1% of the slowest anchor's packets
ANCHOR_LINK_MBPS = 100_000


def anchor_mpps(anchor: Anchor, objects) -> float:
    """Mpps the one CPU handled on the anchor's path."""
    target = MockTarget()
    for port in ("p0", "p1"):
        target.sh(f"ethtool -s {port} speed {ANCHOR_LINK_MBPS} duplex full autoneg off")
    base_dut(target)
    anchor.configure(target, objects)
    result = target.traffic(Profile((Stream.of("p0", frame(anchor.dst)),)), duration=ANCHOR_SECONDS)
    offered = sum(stats.opackets for stats in result.streams.values())
    missed = sum(loss.packets for loss in result.losses if loss.stage == Stage.NIC_RX)
    return (offered - missed) / result.duration / 1e6


def main() -> None:
    objects = bpf_build.Objects()
    for anchor in ANCHORS:
        mpps = anchor_mpps(anchor, objects)
        print(f"figure model.{anchor.name} {mpps:.3f} Mpps")
        print(f"  paper: {anchor.paper}, model {mpps / anchor.mpps - 1:+.1%} from {anchor.mpps}", file=sys.stderr)


if __name__ == "__main__":
    main()
