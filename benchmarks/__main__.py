"""`python -m benchmarks [NAME ...] [OPTION ...]`: run the named benchmarks (all by
default); options after the names go to the one named benchmark that takes them
(`python -m benchmarks lab_faults --minutes 30`)."""
from __future__ import annotations

import sys

from benchmarks import (bpf, bpf_load, ceiling, fib, iptables_conformance, ipv4_path, lab, lab_faults, linerate,
                        linerate_model, memory, netfilter, nft_conformance, nft_load, nft_rules, tcp_bulk)

BENCHMARKS = {
    "ipv4_path": ipv4_path.main,
    "fib": fib.main,
    "bpf": bpf.main,
    "bpf_load": bpf_load.main,
    "netfilter": netfilter.main,
    "nft_rules": nft_rules.main,
    "ceiling": ceiling.main,
    "lab": lab.main,
    "lab_faults": lab_faults.main,
    "linerate": linerate.main,
    "linerate_model": linerate_model.main,
    "nft_load": nft_load.main,
    "memory": memory.main,
    "tcp_bulk": tcp_bulk.main,
    "iptables_conformance": iptables_conformance.main,
    "nft_conformance": nft_conformance.main,
}


TAKES_OPTIONS = {"lab_faults"}


def main(argv: list[str]) -> int:
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split] or list(BENCHMARKS), argv[split:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if options and (len(names) != 1 or names[0] not in TAKES_OPTIONS):
        print(f"options ({' '.join(options)}) go to one benchmark that takes them: {', '.join(sorted(TAKES_OPTIONS))}",
              file=sys.stderr)
        return 2
    for name in names:
        if options:
            return BENCHMARKS[name](options)
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
