"""The `journey` console script: what the DUT does to one packet, from the command line.

    journey trace --setup rules.sh --port p0 "Ether()/IP(dst='10.0.1.2')/UDP(dport=53)"
    journey diff  --setup rules.sh --port p0 "Ether()/IP(dst='10.0.1.2')/UDP(dport=53)"

`trace` runs the frames through one target (the mock by default) and prints each
packet's path; `diff` runs them through the mock and the netns lab and prints where
the two differ. docs/journey-command.md is the manual. Exit status: 0, or for diff
0 when the targets agree and 1 when they differ; 2 when the run could not happen
(bad arguments, a frame that cannot be built, a setup command that failed, a
target that is not available), with the cause on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from harness.cli.diff import diff_json, diff_svg, render_diff
from harness.cli.frames import FrameError, read_frames
from harness.cli.setup_file import SetupFileError, read_setup_file
from harness.cli.trace import PLANS, TARGETS, SetupFailed, Trace, render_json, render_svg, render_text, run_trace
from harness.labfile import LabFileError
from harness.target import PORTS, TargetError

EXIT_DIFFERENT = 1
EXIT_TROUBLE = 2
FORMATS = ("text", "svg", "json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.lab and args.command == "trace" and args.target != "dut":
        parser.error(f"--lab={args.lab} drives a lab DUT: use it with --target=dut")
    try:
        frames = read_frames(args.packet, next(port for port in PORTS if port.name == args.port))
        setup = read_setup_file(args.setup) if args.setup else []
        setup_name = args.setup or ""
        if args.command == "trace":
            trace = run_trace(args.target, args.port, frames, setup, setup_name, args.plan, args.lab)
            sys.stdout.write(_trace_output(trace, args.format))
            return 0
        first, second = (run_trace(target, args.port, frames, setup, setup_name, args.plan, lab)
                         for target, lab in zip(TARGETS, (None, args.lab)))
        text, differences = render_diff(first, second)
        sys.stdout.write(_diff_output(first, second, text, differences, args.format))
        return EXIT_DIFFERENT if differences else 0
    except (FrameError, SetupFileError, SetupFailed, TargetError, LabFileError) as exc:
        print(f"journey {args.command}: {exc}", file=sys.stderr)
        return EXIT_TROUBLE


def _trace_output(trace: Trace, format: str) -> str:
    if format == "svg":
        return render_svg(trace)
    if format == "json":
        return json.dumps(render_json(trace), indent=2) + "\n"
    return render_text(trace)


def _diff_output(first: Trace, second: Trace, text: str, differences: int, format: str) -> str:
    if format == "svg":
        return diff_svg(first, second)
    if format == "json":
        return json.dumps(diff_json(first, second, differences), indent=2) + "\n"
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journey", description="What the Linux network stack does to a packet: "
                                     "its journey through a DUT (the mock kernel or the netns lab).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{trace,diff}")
    trace = commands.add_parser("trace", help="run frames through one target and print each packet's path",
                                description="Run frames through a fresh DUT and print each packet's path.")
    trace.add_argument("--target", choices=TARGETS, default="mock",
                       help="mock: the kernel model (default); dut: this machine's kernel in the netns lab (root)")
    diff = commands.add_parser("diff", help="run frames through the mock and the netns lab and show where they differ",
                               description="Run the same frames through the mock and the netns lab (root), "
                                           "or a lab DUT (--lab), and print where they differ: hops both observe, "
                                           "verdicts, drops, frames out. "
                                           "Exit status 1 when they differ.")
    for command in (trace, diff):
        command.add_argument("--port", required=True, choices=[port.name for port in PORTS],
                             help="the DUT port the frames go into")
        command.add_argument("--setup", metavar="FILE",
                             help="commands configuring the DUT, one per line as in a shell script "
                                  "(ip, nft with `-f - <<EOF` here-documents, sysctl, tc, ...)")
        command.add_argument("--lab", metavar="LAB.yaml",
                             help="the dut is the first station of this lab file (docs/lab-file.md) instead of "
                                  "the netns lab")
        command.add_argument("--plan", choices=PLANS, default="router",
                             help="before the setup: router (default): 10.0.N.1/24 on pN, hosts 10.0.N.2 as "
                                  "permanent neighbours, forwarding on; hosts: the same without forwarding; "
                                  "none: a bare DUT")
        command.add_argument("--format", choices=FORMATS, default="text",
                             help="text (default); svg: the journey map (diff: both side by side); "
                                  "json: the frames and the journeys")
        command.add_argument("packet", metavar="PACKET",
                             help="a scapy expression (scapy's layers only: Ether()/IP(dst='10.0.1.2')/UDP()), "
                                  "hex bytes, or a pcap file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
