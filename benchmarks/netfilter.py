"""Forwarded UDP through conntrack, NAT and a filter ruleset, packets per second.

p0 -> p1 as in ipv4_path, plus: masquerade on p1 (conntrack + NAT on every
packet), and a forward chain of 100 rules that do not match the flow before
the one that accepts it; then the same with one rule matching the source
against a 1,000-element set. The mock figures are measured as ipv4_path's
mock.forward_udp. The anchor, kernel.forward_ct_nat_100rules, is the real kernel in
the netns lab with the same ruleset, fed by pjgen with nothing observing the path,
forwarded frames counted at the DUT's p1 TX counter; kernel.forward_ct_nat_100rules_sender
is the sender's own rate, the same frames into a tester device that takes them for free
(benchmarks/kernel_anchor.py says how and why).
"""
from __future__ import annotations


from benchmarks.ipv4_path import _mock, kernel_figures, measure

BASE = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


def ruleset_100_rules() -> str:
    misses = "\n".join(f"        ip saddr 192.0.2.{i} udp dport {1000 + i} drop" for i in range(100))
    return BASE + f"""
table ip filter {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
{misses}
        ct state new,established accept
    }}
}}
"""


def ruleset_set_1000() -> str:
    elements = ", ".join(f"198.18.{i // 250}.{i % 250 + 1}" for i in range(1000))
    return BASE + f"""
table ip filter {{
    set blocked {{ type ipv4_addr; elements = {{ {elements} }} }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ip saddr @blocked drop
        ct state new,established accept
    }}
}}
"""


def main() -> None:
    for name, ruleset, anchored in (("forward_ct_nat_100rules", ruleset_100_rules(), True),
                                    ("forward_ct_nat_set1000", ruleset_set_1000(), False)):
        target = _mock()
        try:
            target.sh("nft -f -", stdin=ruleset)
            print(f"figure mock.{name} {measure(target, 'forward', 20_000):.0f} pps", flush=True)
        finally:
            target.close()
        if anchored:
            kernel_figures(name, "forward", ruleset)
