"""Loading nft rulesets into the mock: one `nft -f` of a chain of 1k and 10k
rules (parse, the batch, the commit that compiles it), and one `nft add rule`
appended to a chain of 10k rules (the batch and the commit alone). Each rule is
distinct: `ip saddr <addr> tcp dport <port> counter accept`. Medians of 5, each
load on a fresh mock kernel. Times are the process's CPU time
(time.process_time()): the model is single-threaded, so on a quiet machine this
is its wall time, and on the shared one it leaves out the other jobs' share of
the cores. The kernel's own figures are left out: its loading cost is netlink
and nft's, not the model's.
"""
from __future__ import annotations

import statistics
import time

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.target import sh

RUNS = 5


def chain_of(rules: int) -> str:
    lines = "\n".join(f"\t\tip saddr 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} tcp dport {1 + i % 60000} "
                      "counter accept" for i in range(rules))
    return ("table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
            f"{lines}\n\t}}\n}}\n")


def load_seconds(ruleset: str) -> float:
    kernel = Kernel()
    start = time.process_time()
    sh(kernel, ["nft", "-f", "-"], ruleset)
    return time.process_time() - start


def add_rule_ms(kernel: Kernel, i: int) -> float:
    start = time.process_time()
    sh(kernel, ["nft", "add", "rule", "ip", "filter", "input", "ip", "saddr", f"192.0.2.{i}", "counter", "drop"])
    return (time.process_time() - start) * 1e3


def main() -> None:
    for rules, name in ((1_000, "nft_load_1k_rules"), (10_000, "nft_load_10k_rules")):
        ruleset = chain_of(rules)
        print(f"figure mock.{name} {statistics.median(load_seconds(ruleset) for _ in range(RUNS)):.3f} s",
              flush=True)
    kernel = Kernel()
    sh(kernel, ["nft", "-f", "-"], chain_of(10_000))
    print(f"figure mock.nft_add_rule_at_10k {statistics.median(add_rule_ms(kernel, i) for i in range(RUNS)):.2f} ms",
          flush=True)
