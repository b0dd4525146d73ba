"""`python -m harness.conformance nft --checkout DIR`: nftables' tests/py
replayed on the mock and on the real nft (harness/conformance/nft.py); prints
`figure nft.NAME N count`, and with --show KIND every case of that kind."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.conformance import nft


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=("nft",))
    parser.add_argument("--checkout", type=Path, required=True, help="a checkout of the nftables repository at v1.0.6")
    parser.add_argument("--dirs", default=",".join(nft.HEADLINE_DIRS),
                        help="tests/py directories to replay (default: %(default)s; all: " + ",".join(nft.ALL_DIRS) + ")")
    parser.add_argument("--only", help="replay only the files whose path matches this regular expression")
    parser.add_argument("--show", action="append", default=[], choices=nft.KINDS, help="print every case of this kind")
    parser.add_argument("--refresh", action="store_true", help="ask the real nft again instead of its cached answers")
    args = parser.parse_args(argv)
    unknown = set(args.dirs.split(",")) - set(nft.ALL_DIRS)
    if unknown:
        parser.error(f"--dirs: no such tests/py directory: {', '.join(sorted(unknown))} (have: {', '.join(nft.ALL_DIRS)})")
    outcomes, setup = nft.run(args.checkout, tuple(args.dirs.split(",")), args.only, args.refresh)
    try:
        for kind in args.show:
            for outcome in outcomes:
                if outcome.kind == kind:
                    print(outcome.describe())
        for name, value in nft.figures(outcomes, setup).items():
            print(f"figure nft.{name} {value} count")
        sys.stdout.flush()
    except BrokenPipeError:  # `--show KIND | head`: the reader has gone, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
