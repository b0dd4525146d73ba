"""nftables' own regression tests (tests/py of a checkout of nftables v1.0.6)
replayed on the mock and judged by the real nft 1.0.6's answers
(harness/conformance/nft.py, which says what each figure counts). Prints
`figure nft.NAME N count` for the headline directories (ip, inet, any, ip6).

The checkout is PJ_NFTABLES_SRC (`git clone https://git.netfilter.org/nftables;
git checkout v1.0.6`); the real nft's answers are asked once as root in a
scratch network namespace and cached (harness/conformance/replay.py). Without
a checkout, or without root and a cache, the benchmark says why on stderr and
prints nothing.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.conformance import nft

CHECKOUT_VARIABLE = "PJ_NFTABLES_SRC"


def main() -> None:
    checkout = os.environ.get(CHECKOUT_VARIABLE)
    if not checkout:
        print(f"nft_conformance: skipped: no nftables checkout: set {CHECKOUT_VARIABLE} to a checkout of "
              "nftables v1.0.6 (needs root for the real nft)", file=sys.stderr)
        return
    try:
        outcomes, setup = nft.run(Path(checkout), nft.HEADLINE_DIRS)
    except SystemExit as why:
        print(f"nft_conformance: skipped: {why}", file=sys.stderr)
        return
    for name, value in nft.figures(outcomes, setup).items():
        print(f"figure nft.{name} {value} count", flush=True)


if __name__ == "__main__":
    main()
