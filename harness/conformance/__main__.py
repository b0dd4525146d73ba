"""`python -m harness.conformance nft|iptables`: the tools' own tests, mock vs real tool.

nftables' tests/py (harness/conformance/nft.py) or iptables' extensions/*.t
(harness/conformance/iptables.py), read from --checkout DIR, replayed on the mock and
on the real tool; prints `figure SUITE.NAME N count`, and with --show KIND every case
of that kind."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.conformance import iptables, nft


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=("nft", "iptables"))
    parser.add_argument("--checkout", type=Path, required=True,
                        help="a checkout of the nftables repository at v1.0.6 (nft) or of iptables at v1.8.9")
    parser.add_argument("--dirs", default=",".join(nft.HEADLINE_DIRS),
                        help="nft: tests/py directories to replay (default: %(default)s; all: "
                        + ",".join(nft.ALL_DIRS) + ")")
    parser.add_argument("--families", default=",".join(iptables.HEADLINE_FAMILIES),
                        help="iptables: the files to replay, by family (default: %(default)s; all: "
                        + ",".join(iptables.FAMILIES) + "; arptables and ebtables files are not replayed)")
    parser.add_argument("--only", help="replay only the files whose path matches this regular expression")
    parser.add_argument("--show", action="append", default=[], choices=sorted(set(nft.KINDS) | set(iptables.SHOWN)),
                        help="print every case of this kind")
    parser.add_argument("--refresh", action="store_true", help="ask the real tool again instead of its cached answers")
    args = parser.parse_args(argv)
    try:
        if args.suite == "nft":
            unknown = set(args.dirs.split(",")) - set(nft.ALL_DIRS)
            if unknown:
                parser.error(f"--dirs: no such tests/py directory: {', '.join(sorted(unknown))} "
                             f"(have: {', '.join(nft.ALL_DIRS)})")
            outcomes, setup = nft.run(args.checkout, tuple(args.dirs.split(",")), args.only, args.refresh)
            for kind in args.show:
                for outcome in outcomes:
                    if outcome.kind == kind:
                        print(outcome.describe())
            results = nft.figures(outcomes, setup)
        else:
            families = tuple(args.families.split(","))
            unknown = set(families) - set(iptables.FAMILIES)
            if unknown:
                parser.error(f"--families: no such family {', '.join(sorted(unknown))} "
                             f"(have: {', '.join(iptables.FAMILIES)})")
            outcomes, setup = iptables.run(args.checkout, families, args.only, args.refresh)
            for kind in args.show:
                for outcome in outcomes:
                    if outcome.is_a(kind):
                        print(outcome.describe(kind))
            for name in iptables.skipped_files(args.checkout):
                print(f"not replayed: extensions/{name} (arptables, ebtables)")
            results = iptables.figures(outcomes, setup)
        for name, value in results.items():
            print(f"figure {args.suite}.{name} {value} count")
        sys.stdout.flush()
    except BrokenPipeError:  # `--show KIND | head`: the reader has gone, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
