"""What a test result carries into the Allure report, and the report itself.

Each result names its target three ways (parameter, label and tag "target": `mock`,
`netns` for the embedded netns lab, `lab` for a lab DUT), so allurerc.mjs puts each
target in an Allure 3 environment of its own and one test's results on each target sit
side by side. Labels say what the test is about (SUITE_AREAS: epic = the suite's area,
feature = its subject, story = the test function; severity by area) and which test case
it is across targets (`case`, and ALLURE_ID for Allure: the pytest node id, which has no
target in it). Each result attaches its packets' journeys and a pcap of its frames; each
target's environment is harness/report/environment.py's.

`python -m harness.report.allure` makes the single-file report that opens offline and
prints the sign-off quality gate (allurerc.mjs).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import allure
import pytest

from harness.journey import Journey
from harness.packets import frames_pcap
from harness.report.environment import REPOSITORY  # holds allurerc.mjs and node_modules/ (npm install allure@3)
from harness.report.journey_map import attach_journeys, attach_traffic_paths
from harness.target import Target


@dataclass(frozen=True)
class Area:
    """Where a suite file sits in the report: epic, feature, and how much a failure weighs."""

    epic: str
    feature: str
    severity: str  # critical: a wrong verdict, NAT or drop on the path; minor: the tools' text


CRITICAL, NORMAL, MINOR = "critical", "normal", "minor"
SUITE_AREAS: dict[str, Area] = {
    "suites/test_nf_ordering.py": Area("Ordering", "netfilter chains traversed", CRITICAL),
    "suites/test_nft_matches.py": Area("Ordering", "nftables matches and statements", CRITICAL),
    "suites/test_nft_maps.py": Area("Ordering", "nftables data maps", CRITICAL),
    "suites/test_iptables_extensions.py": Area("Ordering", "iptables extensions on real frames", CRITICAL),
    "suites/test_iptables_steering.py": Area("Ordering", "iptables HMARK, cluster, TEE, TPROXY, CONNSECMARK", CRITICAL),
    "suites/test_iptables_inspect.py": Area("Ordering", "iptables physdev, u32, bpf, rpfilter and osf on real frames",
                                            CRITICAL),
    "suites/test_iptables_rate.py": Area("Ordering", "iptables rate estimators and rate matches", CRITICAL),
    "suites/test_nft_syntax.py": Area("Ordering", "nft command-line syntax", MINOR),
    "suites/test_nft_headers.py": Area("Ordering", "nft payload matches on more protocol headers", NORMAL),
    "suites/test_nft_meta.py": Area("Ordering", "nft meta keys and netdev egress chains", NORMAL),
    "suites/test_nft_stateful.py": Area("Ordering", "nft stateful objects and statements", NORMAL),
    "suites/test_nft_icmp_dependencies.py": Area("Ordering", "nft icmp field dependencies", MINOR),
    "suites/test_nft_exprs.py": Area("Ordering", "nft bitwise, TCP options, conntrack keys, dynamic sets", NORMAL),
    "suites/test_nft_netdev_fwd.py": Area("Ordering", "nft netdev fwd and dup: out of another port, past the stack",
                                          NORMAL),
    "suites/test_nft_flowtable.py": Area("Ordering", "nft flowtables: the fast path past FORWARD and POSTROUTING, "
                                                  "its NAT, TTL, MTU fallback and teardown", NORMAL),
    "suites/test_nft_queue.py": Area("Drops", "queueing to userspace with no program: nf_queue frees or bypasses",
                                     NORMAL),
    "suites/test_nft_bridge.py": Area("Bridge", "nft bridge family: chains, ether/vlan, refusals", MINOR),
    "suites/test_bridge.py": Area("Bridge", "the Linux bridge: flooding, learning, ageing, ports, VLANs", CRITICAL),
    "suites/test_br_netfilter.py": Area("Bridge", "br_netfilter and bridge-family drops", CRITICAL),
    "suites/test_br_netfilter6.py": Area("Bridge", "br_netfilter for bridged IPv6 (call-ip6tables)", CRITICAL),
    "suites/test_bridge_mcast.py": Area("Bridge", "multicast snooping: mdb, queriers, router ports", CRITICAL),
    "suites/test_bridge_stp.py": Area("Bridge", "802.1D STP: BPDUs, root election, a loop blocked", CRITICAL),
    "suites/test_container_host.py": Area("NAT", "the container-host path (bridge, masquerade, published port)",
                                          CRITICAL),
    "suites/test_nft_dualstack.py": Area("Ordering", "dual-stack inet ruleset and fib rp filter", CRITICAL),
    "suites/test_nat.py": Area("NAT", "NAT placement and un-NAT of replies", CRITICAL),
    "suites/test_nat_pitfalls.py": Area("NAT", "NAT in the wrong place", CRITICAL),
    "suites/test_tcp_mss_clamp.py": Area("NAT", "TCP MSS clamping of forwarded SYNs", CRITICAL),
    "suites/test_ip_rcv.py": Area("Drops", "malformed IPv4 headers (ip_rcv_core)", CRITICAL),
    "suites/test_vlan_rx.py": Area("Drops", "802.1Q tags on receive (skb_vlan_untag, check_vlan_id)", CRITICAL),
    "suites/test_ip_options.py": Area("Drops", "IPv4 options: refused, written on forwarding, echoed", CRITICAL),
    "suites/test_diff_cases.py": Area("Drops", "generated scenarios the kernel once answered otherwise", CRITICAL),
    "suites/test_rp_filter.py": Area("Drops", "source validation (rp_filter, martians)", CRITICAL),
    "suites/test_forwarding.py": Area("Drops", "forwarding (ip_forward)", CRITICAL),
    "suites/test_ipv6_route.py": Area("IPv6", "IPv6 routes (ip -6 route, FIB6)", MINOR),
    "suites/test_ipv6_rules.py": Area("IPv6", "IPv6 policy routing (ip -6 rule)", NORMAL),
    "suites/test_ipv6_ecmp.py": Area("IPv6", "IPv6 ECMP routes and the multipath hash", NORMAL),
    "suites/test_ipv6_snmp6.py": Area("IPv6", "IPv6 SNMP counters (/proc/net/snmp6, nstat)", NORMAL),
    "suites/test_ipv6_datapath.py": Area("IPv6", "IPv6 receive, forwarding, ICMPv6 and UDP", CRITICAL),
    "suites/test_ipv6_exthdrs.py": Area("IPv6", "IPv6 extension headers and reassembly", CRITICAL),
    "suites/test_ipv6_nd.py": Area("IPv6", "neighbour discovery and DAD", CRITICAL),
    "suites/test_ipv6_nd_proxy.py": Area("IPv6", "proxy NDP", NORMAL),
    "suites/test_ipv6_ra.py": Area("IPv6", "router advertisements on a host and a router", CRITICAL),
    "suites/test_ipv6_redirect.py": Area("IPv6", "redirects sent by a router", NORMAL),
    "suites/test_ipv6_sysctls.py": Area("IPv6", "per-device IPv6 sysctls", NORMAL),
    "suites/test_fragments.py": Area("Drops", "fragmentation and reassembly", CRITICAL),
    "suites/test_arp.py": Area("Drops", "ARP and next-hop resolution", CRITICAL),
    "suites/test_multicast.py": Area("Drops", "IPv4 multicast input", CRITICAL),
    "suites/test_counters.py": Area("Drops", "counters (nstat, ip -s link, softnet_stat)", NORMAL),
    "suites/test_conntrack_states.py": Area("Conntrack", "ct state", CRITICAL),
    "suites/test_conntrack_tcp.py": Area("Conntrack", "TCP connection tracking", CRITICAL),
    "suites/test_nft_synproxy.py": Area("Conntrack", "SYN proxy: cookies, the server's handshake, seqadj",
                                        CRITICAL),
    "suites/test_ipv6_conntrack.py": Area("Conntrack", "IPv6 fragments through conntrack (nf_defrag_ipv6)", CRITICAL),
    "suites/test_nft_nat66_maps.py": Area("NAT", "NAT66 with maps, ct tuple addresses", CRITICAL),
    "suites/test_xdp.py": Area("XDP", "XDP verdicts", NORMAL),
    "suites/test_xdp_events.py": Area("XDP", "eBPF events and cpumap", NORMAL),
    "suites/test_xdp_forward.py": Area("XDP", "XDP forwarding with bpf_fib_lookup", NORMAL),
    "suites/test_xdp_maps.py": Area("XDP", "XDP programs and their maps", NORMAL),
    "suites/test_bpf_ipv6.py": Area("XDP", "XDP and TC programs on IPv6 frames", NORMAL),
    "suites/test_tc.py": Area("TC", "clsact and cls_bpf", NORMAL),
    "suites/test_tc_journey.py": Area("TC", "TC egress in the journey", NORMAL),
    "suites/test_tc_maps.py": Area("TC", "TC programs and their maps", NORMAL),
    "suites/test_qdisc.py": Area("TC", "egress qdiscs", NORMAL),
    "suites/test_local_delivery.py": Area("L4", "local delivery, sockets and ICMP answers", NORMAL),
    "suites/test_tcp_endpoint.py": Area("TCP", "the DUT as a TCP endpoint", NORMAL),
    "suites/test_tcp_nat.py": Area("TCP", "TCP through NAT and conntrack", NORMAL),
    "suites/test_tcp6_endpoint.py": Area("TCP", "the DUT as a TCP endpoint over IPv6", NORMAL),
    "suites/test_tcp6_nat.py": Area("TCP", "TCP over IPv6 through conntrack and NAT66", NORMAL),
    "suites/test_tcp_counters.py": Area("TCP", "TCP counters (nstat)", NORMAL),
    "suites/test_tcp_ss.py": Area("TCP", "ss -t", MINOR),
    "suites/test_packetdrill.py": Area("TCP", "packetdrill scripts", NORMAL),
    "suites/test_linerate.py": Area("Line rate", "traffic at rate and RFC 2544", NORMAL),
}
OTHER_SUITES = "Other suites"  # the epic of a suite file not in SUITE_AREAS (a user's own)


def target_label(config: pytest.Config) -> str:
    """The target as the report names it: mock, netns (the embedded lab) or lab."""
    if config.getoption("--target") == "mock":
        return "mock"
    return "lab" if config.getoption("--lab") else "netns"


def reporting(config: pytest.Config) -> bool:
    """Whether this run writes Allure results. allure-commons' hooks are process-global: a
    run without --alluredir inside another (pytester) must not label the outer test."""
    return bool(config.getoption("allure_report_dir", None))


def area_of(nodeid: str) -> Area:
    path = nodeid.split("::", 1)[0]
    return SUITE_AREAS.get(path) or Area(OTHER_SUITES, Path(path).stem, NORMAL)


def label_result(item: pytest.Item, target: str, station: str | None) -> None:
    """The running test's target, area, severity and case (module doc)."""
    area = area_of(item.nodeid)
    allure.dynamic.parameter("target", _Unquoted(target))
    allure.dynamic.label("target", target)
    allure.dynamic.tag(f"target:{target}")
    if station is not None:
        allure.dynamic.label("station", station)
    allure.dynamic.label("case", item.nodeid)
    # Allure's test case is the function (allure-pytest's testCaseId) unless ALLURE_ID names it: one
    # parametrised case per test case, so its Environments tab shows this case on each target
    allure.dynamic.label("ALLURE_ID", item.nodeid)
    allure.dynamic.epic(area.epic)
    allure.dynamic.feature(area.feature)
    allure.dynamic.story(getattr(item, "originalname", item.name).removeprefix("test_").replace("_", " "))
    allure.dynamic.severity(area.severity)
    for param, value in getattr(getattr(item, "callspec", None), "params", {}).items():
        shown = _parameter_text(value)
        if shown is not None:
            allure.dynamic.parameter(param, _Unquoted(shown))


class _Unquoted:
    """An Allure parameter value shown as plain text (allure-commons' represent() quotes a str)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _parameter_text(value: object) -> str | None:
    """What to show for a parameter allure-commons' represent() would show badly:
    any bytes as "<class 'bytes'>" (cases differing only in bytes would read as
    one test's retries), a function with its address (new in every run)."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex(" ") or "(empty)"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return None


def attach_results(target: str, dut: Target, journeys: str, recorded: list[Journey]) -> None:
    """The test's journeys (the map, the text and JSON), its line-rate runs' paths, a
    pcap of its frames, and the lab station it ran on."""
    attach_journeys(target, dut.capabilities, recorded, journeys, dut.frame_log)
    attach_traffic_paths(target, dut.traffic_results)
    if dut.frame_log:
        allure.attach(frames_pcap(dut.frame_log), name=f"frames ({target}).pcap",
                      attachment_type=allure.attachment_type.PCAP)
    identity = getattr(getattr(dut, "station", None), "identity", None)
    if identity is not None:  # which DUT and TRex the result comes from
        allure.attach(json.dumps(identity, indent=2, default=str), name="lab station",
                      attachment_type=allure.attachment_type.JSON)


# The report ------------------------------------------------------------------------

class ReportError(Exception):
    """The report could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class GateRule:
    """One rule of the sign-off quality gate (allurerc.mjs) and how the results fared."""

    rule: str
    success: bool
    message: str


# Allure 3.18's Awesome template loads Google Analytics unconditionally (allure3 issue #476):
# the report must open offline and call nobody.
GOOGLE_ANALYTICS = re.compile(r'[ \t]*<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*">'
                              r'</script>\s*<script>\s*window\.dataLayer\b.*?</script>\n?', re.DOTALL)
EXTERNAL_LOAD = re.compile(r'<(?:script|link|img|iframe|source|audio|video|embed|object)\b[^>]*?'
                           r'\b(?:src|href|data)\s*=\s*["\']?((?:https?:)?//[^"\'\s>]+)', re.IGNORECASE)


def offline(html: str) -> str:
    """The report's HTML without Google Analytics; a ReportError naming anything else it
    would load from the network."""
    html = GOOGLE_ANALYTICS.sub("", html, count=1)
    loads = EXTERNAL_LOAD.findall(html)
    if loads:
        raise ReportError(f"the report would load {', '.join(sorted(set(loads)))} from the network "
                          "(a new Allure template?): it must open offline")
    return html


def generate(reports: Path) -> list[GateRule]:
    """The single-file report of `reports`/allure-results in `reports`/html/index.html,
    with history in `reports`/history.jsonl (allurerc.mjs), and the quality gate's rules."""
    results = reports / "allure-results"
    if not results.is_dir():
        raise ReportError(f"{results}: no Allure results; run pytest with --alluredir={results}")
    if not (REPOSITORY / "node_modules" / "@allurereport" / "core").is_dir():
        raise ReportError(f"Allure Report 3 is not installed in {REPOSITORY}: npm install allure@3 "
                          "(bash .ci/setup does)")
    try:
        done = subprocess.run(["node", str(Path(__file__).with_name("generate.mjs"))], cwd=REPOSITORY,
                              env={**os.environ, "PJ_REPORTS": str(reports.resolve()), "NO_COLOR": "1"},
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise ReportError("node not found: Allure Report 3 runs on Node.js (apt-get install nodejs)") from None
    if done.returncode != 0:
        raise ReportError(f"Allure could not generate the report (exit {done.returncode}):\n{done.stderr.strip()}")
    index = reports / "html" / "index.html"
    index.write_text(offline(index.read_text()))
    rules = [GateRule(**json.loads(line)) for line in done.stdout.splitlines() if line.startswith('{"rule"')]
    if not rules:  # a gate that checked nothing must not read as passed
        raise ReportError(f"the quality gate gave no result (allurerc.mjs's qualityGate):\n{done.stdout.strip()}")
    return rules


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.allure",
        description="The sign-off report: one HTML file that opens offline, from the Allure results "
                    "of every target, and the quality gate (allurerc.mjs); exit 1 if the gate fails.")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="results in REPORTS/allure-results, the report in REPORTS/html (default reports)")
    args = parser.parse_args(argv)
    try:
        rules = generate(args.reports)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {args.reports / 'html' / 'index.html'} (one file, opens offline)")
    passed = all(rule.success for rule in rules)
    print(f"quality gate: {'PASSED' if passed else 'FAILED'}")
    for rule in rules:
        print(f"  {'ok    ' if rule.success else 'FAILED'} {rule.rule}: {rule.message}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
