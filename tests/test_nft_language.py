"""What cuts across the nft language on the mock (netfilter/nft_parser.py's
evaluate_rule(), nft_exprs.py's delinearize(), nft_json.py): protocol
dependencies nft inserts and leaves out of its listing, the checks of its
evaluation and of the kernel's expression init, and bison's syntax errors,
each rule listed (text and JSON) or refused as nft 1.0.6 on this kernel does
(answers recorded in tests/golden/nft/ by tests/golden/record_nft)."""
from __future__ import annotations

import pytest

from test_nft import _without_json_handles, real_tools  # noqa: F401  (a fixture, used by name)

CHAIN = "table %s t {\n\tchain c {\n\t\ttype filter hook %s priority filter; policy accept;\n\t\t%s\n\t}\n}\n"

LISTED = [  # (family, hook, rule)
    ("ip", "input", "meta protocol ip udp dport 67"),
    ("ip6", "input", "meta protocol ip6 udp dport 67"),
    ("ip", "input", "meta protocol ip6 udp dport 67"),
    ("inet", "input", "meta nfproto ipv4 icmpv6 type echo-request"),
    ("inet", "input", "meta nfproto ipv6 icmp type echo-request"),
    ("inet", "input", "meta nfproto ipv4 icmp type echo-request"),
    ("inet", "input", "meta nfproto ipv4 tcp dport 22"),
    ("inet", "input", "meta l4proto ipv6-icmp icmpv6 type echo-request accept"),
    ("inet", "input", "mark 12345 reject with tcp reset"),
    ("ip", "input", "mark 12345 reject with tcp reset"),
    ("inet", "input", "mark 3 reject with icmp port-unreachable"),
    ("ip", "output", "ip protocol 6 redirect to :tcp dport map { 22 : 8000, 80 : 8080 }"),
    ("ip", "input", "icmp mtu 1400"), ("ip", "input", "icmp gateway 1400"), ("ip", "input", "icmp id 9"),
    ("ip", "input", "icmp type destination-unreachable icmp mtu 1400"),
    ("ip6", "input", "icmpv6 type packet-too-big icmpv6 mtu 1280"),
    ("ip", "input", "meta l4proto 33-45"), ("ip", "input", "meta l4proto { 33-55, 66-88 }"),
    ("ip", "input", "meta mark 0xffffff00/24"),
    ("inet", "input", "meta nfproto ipv4 ct original saddr 1.2.3.4"),
    ("ip", "input", "ip hdrlength 15"),
]
REFUSED = [
    ("ip", "input", "icmp code != 1 icmp type 2 icmp mtu 5"),
    ("ip", "input", "ip hdrlength 16"), ("ip", "input", "ip protocol 256"),
    ("inet", "input", "meta l4proto { tcp, udp } tcp dport 20"),
    ("inet", "input", "meta l4proto udp reject with tcp reset"),
    ("ip", "output", "meta mark set ct original daddr map { 1.1.1.1 : 0x00000011 }"),
    ("inet", "input", "meta nfproto ipv6 ct original ip saddr 1.2.3.4"),
    ("ip", "input", "tcp flags & (fin | syn | rst | ack) ! syn"),
    ("ip", "output", "limit rate 1023000 mbytes/second"),
    ("ip", "output", "log level audit prefix \"foo\""),
    ("ip", "input", "meta iifname \"\""), ("ip", "input", "iifname \"abcdefghijklmnopq\""),
    ("ip", "prerouting", "fib daddr . oif type local"),
    ("ip", "postrouting", "snat ip to ip saddr map { 10.141.11.4 : 192.168.2.3 . 80 }"),
    ("ip", "output", "udp dport 1234 redirect random to 123"),
    ("ip", "input", "counter handle"), ("ip", "input", "ip saddr 1.1.1.1 : 3"),
    ("ip", "input", "tcp dport 1 comment \"x\" counter"),
    ("ip", "input", "tcp dport set { 1, 2, 3 }"),
    ("ip", "output", "redirect to :12341111"),
    ("ip", "output", "limit rate 1023/second burst 10 bytes"),
    ("ip", "output", "limit rate 512 kbytes/second burst 5 packets"),
    ("ip", "output", "limit rate 1 gbytes / second"),
    ("ip", "output", "queue num 65536"), ("ip", "output", "queue num 4 fanout"),
    ("ip", "output", "queue to oif"), ("ip", "output", "queue num oif"),
    ("ip", "input", "tcp dport { 1 2 }"), ("ip", "input", "tcp dport { }"),
]


@pytest.mark.parametrize("family, hook, rule", LISTED + REFUSED, ids=[f"{f}-{r}" for f, _, r in LISTED + REFUSED])
def test_a_rule_lists_back_or_is_refused_as_real_nft(family, hook, rule, real_tools):
    if hook in ("prerouting", "postrouting") or "redirect" in rule or "snat" in rule:
        chain = CHAIN.replace("type filter", "type nat") % (family, hook, rule)
    else:
        chain = CHAIN % (family, hook, rule)
    steps = [(["nft", "-f", "-"], chain), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


# files with several errors: bison's `error stmt_separator` skips to the end of the line and
# parsing goes on, so nft reports every syntax error, then the evaluation errors
FILES_WITH_ERRORS = [
    "table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tcounter } }\n",
    "table ip t { chain c { type filter hook input priority 0; } }\n",
    "table ip t {\n\tchain c {\n\t\tfoo bar\n\t\ttcp dport 22 counter\n\t\tip saddr 1.2.3.4.5\n\t\tmeta mark set\n\t}\n}\n",
    "table ip t {\n\tchain c {\n\t\tpolicy maybe\n\t\tudp dport 53 counter\n\t}\n\tset s { type ipv4_addr; }\n\tfoo\n}\n",
    "add table ip t\nadd chain ip t c\nadd rule ip t c tcp dport foo\nadd rule ip t c udp dport\nadd rule ip t c counter\n",
]


@pytest.mark.parametrize("text", FILES_WITH_ERRORS, ids=range(len(FILES_WITH_ERRORS)))
def test_a_file_s_errors_are_all_reported_as_real_nft_reports_them(text, real_tools):
    real_tools.assert_same_as_real([(["nft", "-f", "-"], text), (["nft", "list", "ruleset"], None)])
