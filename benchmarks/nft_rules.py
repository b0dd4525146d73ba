"""Per-packet cost of long nft chains of prefix, range and interval-set matches (issue 12).

p0 -> p1 forwarding as in ipv4_path (10.0.0.2 -> 10.0.1.2, udp 1000 -> 2000),
with a forward chain of 10,000 rules that the packet's fields do not match
(policy accept), or whose last rule accepts it (`_last`). Each figure is the
median of 5 runs of the time per forwarded packet through target.transmit(),
in microseconds, the forwarding itself included. The kernel walks such a chain
rule by rule (286 us per packet for 10k prefix rules on this machine, issue
12); the mock compiles runs of them into lookups (nf_tables_core._index).

- mock.prefix_rules_10k: `ip daddr 172.16-55.x.0/24 drop` (distinct prefixes);
- mock.range_rules_10k: `udp dport A-B drop` (distinct ranges, none holding 2000);
- mock.interval_set_100k: one rule `ip daddr @blocked drop`, a named interval
  set of 100,000 ranges the packet's address is not in;
- mock.dynset_update_100k: one rule `update @seen { ip saddr timeout 60s }`
  refreshing the packet's element in a dynamic set of 100,000 more
  (nft_dynset: a keyed lookup, as the kernel's rhashtable);
- mock.linear_rules_10k_per_rule (ns): rules no index can group (`ip dscp N
  drop`, a field under a mask), as (per-packet time - the time with an empty
  chain) / 10,000: the cost of one rule walked.
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

from benchmarks.ipv4_path import _configure, _frame, _mock, _tx_packets
from harness.target import PORTS

RULES = 10_000
SET_ELEMENTS = 100_000
RUNS = 5
RUN_SECONDS = 0.2  # each run sends batches until it has taken this long


def chain(rules: list[str], sets: str = "") -> str:
    body = "\n".join(f"        {rule}" for rule in rules)
    return f"""
table ip filter {{
{sets}
    chain forward {{
        type filter hook forward priority filter; policy accept;
{body}
    }}
}}
"""


def prefix_rules(last_matches: bool) -> str:
    rules = [f"ip daddr 172.{16 + i // 256}.{i % 256}.0/24 drop" for i in range(RULES)]
    if last_matches:
        rules[-1] = "ip daddr 10.0.1.0/24 accept"
    return chain(rules)


def range_rules(last_matches: bool) -> str:
    rules = [f"udp dport {3000 + 5 * i}-{3002 + 5 * i} drop" for i in range(RULES)]
    if last_matches:
        rules[-1] = "udp dport 1500-2500 accept"
    return chain(rules)


def interval_set() -> str:
    elements = ", ".join(f"172.{16 + i // 4096}.{i // 16 % 256}.{i % 16 * 16}-172.{16 + i // 4096}.{i // 16 % 256}."
                         f"{i % 16 * 16 + 7}" for i in range(SET_ELEMENTS))
    sets = f"    set blocked {{ type ipv4_addr; flags interval; elements = {{ {elements} }} }}"
    return chain(["ip daddr @blocked drop"], sets)


def dynamic_set_update() -> str:
    elements = ", ".join(f"172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(SET_ELEMENTS))
    sets = (f"    set seen {{ type ipv4_addr; size {2 * SET_ELEMENTS}; flags dynamic,timeout; timeout 60s; "
            f"elements = {{ {elements} }} }}")
    return chain(["update @seen { ip saddr timeout 60s }"], sets)


def unindexable_rules(count: int) -> str:
    """Rules on a field no index takes (`ip dscp`: 6 bits of a byte, loaded
    through a mask), none matching the packet's dscp 0."""
    return chain([f"ip dscp {i % 63 + 1} drop" for i in range(count)])


def per_packet_us(ruleset: str) -> float:
    """Median over RUNS of the microseconds per forwarded packet."""
    target = _mock()
    try:
        _configure(target)
        target.sh("nft -f -", stdin=ruleset)
        frame = _frame("10.0.1.2")
        runs, sent = [], 0
        for _ in range(RUNS):
            gc.collect()
            batch, packets = 1, 0
            start = time.perf_counter()
            while time.perf_counter() - start < RUN_SECONDS:
                target.transmit(PORTS[0], [frame] * batch)
                packets += batch
                batch = min(batch * 2, 250)  # under the 256-descriptor RX ring
            runs.append((time.perf_counter() - start) / packets * 1e6)
            sent += packets
        forwarded = _tx_packets(target, PORTS[1].name)
        if forwarded != sent:
            print(f"nft_rules: only {forwarded} of {sent} packets were forwarded", file=sys.stderr)
        return statistics.median(runs)
    finally:
        target.close()


def main() -> None:
    figures = (("prefix_rules_10k", prefix_rules(False)), ("prefix_rules_10k_last", prefix_rules(True)),
               ("range_rules_10k", range_rules(False)), ("range_rules_10k_last", range_rules(True)),
               ("interval_set_100k", interval_set()), ("dynset_update_100k", dynamic_set_update()))
    for name, ruleset in figures:
        print(f"figure mock.{name} {per_packet_us(ruleset):.1f} us", flush=True)
    walked = per_packet_us(unindexable_rules(RULES)) - per_packet_us(unindexable_rules(0))
    print(f"figure mock.linear_rules_10k_per_rule {walked / RULES * 1000:.0f} ns", flush=True)


if __name__ == "__main__":
    main()
