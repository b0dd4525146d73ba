"""The `journey` console script: runs of the installed entry point on the mock with the
output written out by hand, its inputs (scapy expressions evaluated safely, hex,
pcap, the setup file), its errors, the diff of two targets, one run of trace and
diff on the netns lab and one of trace on the stand-in lab's DUT (root)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from harness.cli.diff import render_diff
from harness.cli.frames import FrameError, read_frames
from harness.cli.journey import main
from harness.cli.setup_file import SetupCommand, SetupFileError, parse_setup
from harness.cli.trace import Trace, render_text
from harness.drivers.standin_lab import StandinLab
from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Journey
from harness.target import PORTS

REPO = Path(__file__).resolve().parent.parent
P0, P1 = PORTS[0], PORTS[1]

RULES = """\
# DNS to h1 goes through; UDP port 54 to h1 is dropped
nft -f - <<EOF
table inet f {
    chain forward {
        type filter hook forward priority 0; policy accept;
        udp dport 53 counter accept
        ip daddr 10.0.1.2 udp dport 54 counter drop
    }
}
EOF
"""

DNS_FORWARDED = """\
journey on mock: 1 frame sent into p0

packet 1: 02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
  inbound
     1  NIC_RX[p0] -> DMA (rx ring of 256)
     2  NAPI[p0 poll] (softirq round 1)
     3  SKB[napi_alloc_skb]
     4  IP_RCV[ip_rcv_core] -> OK
     5  ROUTING[ip_route_input_slow] -> FORWARD (p1)
  forward
     6  IP_FORWARD[ip_forward] -> OK
     7  NF_FORWARD[inet f forward] -> ACCEPT (rule 2: udp dport 53 counter accept)
  outbound
     8  NEIGH[neigh_hh_output] -> PERMANENT
     9  NIC_TX[p1] -> XMIT
  => left p1

frames out
  p1: Ether / IP / UDP 10.0.0.2:domain > 10.0.1.2:domain len=42
  p0, p2: none
"""


def journey(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the console script as pip installs it: the [project.scripts] entry of
    pyproject.toml, called as its wrapper calls it (sys.exit(main()))."""
    with open(REPO / "pyproject.toml", "rb") as file:
        module, function = tomllib.load(file)["project"]["scripts"]["journey"].split(":")
    wrapper = f"import sys; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", wrapper, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def rules(tmp_path: Path) -> str:
    path = tmp_path / "rules.sh"
    path.write_text(RULES)
    return str(path)


# trace on the mock ------------------------------------------------------------------

def test_trace_prints_a_forwarded_packet_by_column_and_ends_at_the_port_it_left(rules):
    run = journey("trace", "--setup", rules, "--port", "p0", "Ether()/IP(dst='10.0.1.2')/UDP(dport=53)")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == DNS_FORWARDED


def test_trace_ends_a_packet_a_rule_dropped_with_the_kernels_reason_and_function(rules):
    run = journey("trace", "--setup", rules, "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=54)")
    assert run.returncode == 0
    assert run.stdout == """\
journey on mock: 1 frame sent into p0

packet 1: 02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
  inbound
     1  NIC_RX[p0] -> DMA (rx ring of 256)
     2  NAPI[p0 poll] (softirq round 1)
     3  SKB[napi_alloc_skb]
     4  IP_RCV[ip_rcv_core] -> OK
     5  ROUTING[ip_route_input_slow] -> FORWARD (p1)
  forward
     6  IP_FORWARD[ip_forward] -> OK
     7  NF_FORWARD[inet f forward] -> DROP (rule 3: ip daddr 10.0.1.2 udp dport 54 counter drop)
  => DROP NETFILTER_DROP at NF_FORWARD in nft_do_chain

frames out
  p0, p1, p2: none
"""


def test_trace_without_forwarding_in_the_plan_ends_at_ip_error_without_an_icmp_error():
    run = journey("trace", "--plan", "hosts", "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=53)")
    assert run.returncode == 0
    assert run.stdout.endswith("""
     5  ROUTING[ip_route_input_slow] -> ERROR (errno 113)
  => DROP IP_INADDRERRORS at ROUTING in ip_error

frames out
  p0, p1, p2: none
""")


@pytest.mark.parametrize("form", ["hex", "pcap"])
def test_trace_sends_hex_and_pcap_frames_as_given(rules, tmp_path, form):
    frame = Ether(src=P0.peer_mac, dst=P0.mac) / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=53, dport=53)
    if form == "hex":
        packet = bytes(frame).hex(" ")
    else:
        packet = str(tmp_path / "dns.pcap")
        wrpcap(packet, [frame])
    run = journey("trace", "--setup", rules, "--port", "p0", packet)
    assert (run.returncode, run.stdout) == (0, DNS_FORWARDED)


def test_trace_draws_the_journey_map_as_svg(rules):
    run = journey("trace", "--setup", rules, "--format", "svg", "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=54)")
    assert run.returncode == 0
    drawing = ET.fromstring(run.stdout)
    assert next(drawing.iter("{http://www.w3.org/2000/svg}text")).text == "mock: 1 packet on 1 distinct path"
    words = " ".join("".join(drawing.itertext()).split())
    assert "DROP NETFILTER_DROP in nft_do_chain" in words


def test_trace_as_json_holds_the_frames_in_and_out_and_the_journeys(rules):
    run = journey("trace", "--setup", rules, "--format", "json", "--port", "p0",
                  "Ether()/IP(dst='10.0.1.2')/UDP(dport=53)")
    assert run.returncode == 0
    data = json.loads(run.stdout)
    sent = Ether(src=P0.peer_mac, dst=P0.mac) / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=53, dport=53)
    forwarded = Ether(src=P1.mac, dst=P1.peer_mac) / IP(src="10.0.0.2", dst="10.0.1.2", ttl=63) / UDP(sport=53, dport=53)
    assert (data["target"], data["port"], data["sent"]) == ("mock", "p0", [bytes(sent).hex()])
    assert data["left"] == {"p0": [], "p1": [bytes(forwarded).hex()], "p2": []}
    [only] = data["journeys"]
    assert [hop["stage"] for hop in only["hops"]] == ["NIC_RX", "NAPI", "SKB", "IP_RCV", "ROUTING", "IP_FORWARD",
                                                "NF_FORWARD", "NEIGH", "NIC_TX"]


# errors ---------------------------------------------------------------------------

def test_an_unknown_port_is_refused_naming_the_ports():
    run = journey("trace", "--port", "p7", "IP()")
    assert run.returncode == 2
    assert "argument --port: invalid choice: 'p7' (choose from 'p0', 'p1', 'p2')" in run.stderr


def test_a_bad_expression_is_refused_naming_what_is_wrong():
    run = journey("trace", "--port", "p0", "Ether()/IP(dst='10.0.1.2')/UPD()")
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == ("journey trace: unknown name 'UPD': a frame expression uses scapy's layers only "
                          "(Ether, Dot1Q, ARP, IP, ICMP, UDP, TCP, Raw, ...)\n")


def test_a_failing_setup_command_is_reported_with_its_line_and_the_tools_message(tmp_path):
    setup = tmp_path / "routes.sh"
    setup.write_text("# two routes\nip route add 10.9.0.0/16 via 10.0.1.2\nip route add 10.8.0.0/16 via 10.0.7.7\n")
    run = journey("trace", "--setup", str(setup), "--port", "p0", "IP()")
    assert run.returncode == 2
    assert run.stderr == (f"journey trace: {setup}:3: `ip route add 10.8.0.0/16 via 10.0.7.7` failed: "
                          "Error: Nexthop has invalid gateway.\n")


def test_dut_without_root_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["trace", "--target", "dut", "--port", "p0", "IP()"]) == 2
    assert capsys.readouterr().err == (
        "journey trace: the dut target (--target=dut, and diff) runs the packet through this machine's kernel in "
        "network namespaces the netns lab creates, which needs root: run journey as root (`sudo journey ...`), or "
        "trace on --target=mock\n")


# frames ---------------------------------------------------------------------------

def test_unset_fields_come_from_the_addressing_plan_of_the_port():
    assert read_frames("IP(dst='10.0.0.1')/UDP(dport=53)", P1) == [
        bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:02") / IP(src="10.0.1.2", dst="10.0.0.1") /
              UDP(dport=53))]
    assert read_frames("ARP(pdst='10.0.0.1')", P0) == [
        bytes(Ether(src="02:00:00:00:01:01", dst="ff:ff:ff:ff:ff:ff") /
              ARP(hwsrc="02:00:00:00:01:01", psrc="10.0.0.2", pdst="10.0.0.1"))]


def test_fields_the_expression_sets_are_kept():
    frame = Ether(src="02:00:00:00:0a:0a", dst="02:00:00:00:0b:0b") / IP(src="192.0.2.1", dst="10.0.1.2", ttl=1) / ICMP()
    text = "Ether(src='02:00:00:00:0a:0a', dst='02:00:00:00:0b:0b')/IP(src='192.0.2.1', dst='10.0.1.2', ttl=1)/ICMP()"
    assert read_frames(text, P0) == [bytes(frame)]


def test_an_implicit_set_is_sent_as_its_frames_in_order():
    frames = read_frames("IP(dst='10.0.1.2')/UDP(dport=(53, 55))/(b'x' * 3)", P0)
    assert [Ether(frame)[UDP].dport for frame in frames] == [53, 54, 55]
    assert {bytes(Ether(frame)[UDP].payload) for frame in frames} == {b"xxx"}


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "unknown name '__import__'"),
    ("__import__('os').system('true')", "`__import__('os').system('true')` is not allowed"),
    ("open('/etc/passwd')", "unknown name 'open'"),
    ("Ether().__class__", "`Ether().__class__` is not allowed"),
    ("(lambda: Ether())()", "is not allowed in a frame expression"),
    ("[Ether() for _ in 'ab']", "is not allowed in a frame expression"),
    ("IP(**{'dst': '10.0.1.2'})", "`**` arguments are not allowed"),
    ("IP()/UDP()/(b'x' * 70000)", "builds a 70000-element bytes: at most 65535"),
    ("IP()/UDP(dport=(0, 65535))", "makes 65536 frames, more than 10000"),
    ("IP(ttl=300)", "scapy cannot build 'IP(ttl=300)': ValueError"),
    ("IP(dst='10.0.1.2'", "not a scapy expression: '(' was never closed"),
    ("'53'", "is a str, not a packet"),
])
def test_an_expression_runs_scapy_layers_and_nothing_else(text, message):
    with pytest.raises(FrameError) as err:
        read_frames(text, P0)
    assert message in str(err.value)


def test_a_missing_pcap_is_named():
    with pytest.raises(FrameError, match="no pcap file 'capture.pcap'"):
        read_frames("capture.pcap", P0)


# the setup file -------------------------------------------------------------------

def test_the_setup_file_reads_as_sh_would_with_here_documents_and_continuations():
    text = ("# the DUT\nip route add 192.0.2.0/24 via 10.0.1.2   # to the lab net\n"
            "sysctl -w \\\n    net.ipv4.conf.all.rp_filter=1\n\n"
            "nft -f - <<'EOF'\ntable ip t {\n}\nEOF\n"
            "nft -f - <<-END\n\ttable ip u {\n\t}\n\tEND\n"
            "nft add rule ip t c 'tcp flags & (syn|ack) == syn' accept\n")
    assert parse_setup(text) == [
        SetupCommand(2, ("ip", "route", "add", "192.0.2.0/24", "via", "10.0.1.2")),
        SetupCommand(3, ("sysctl", "-w", "net.ipv4.conf.all.rp_filter=1")),
        SetupCommand(6, ("nft", "-f", "-"), "table ip t {\n}\n"),
        SetupCommand(10, ("nft", "-f", "-"), "table ip u {\n}\n"),
        SetupCommand(14, ("nft", "add", "rule", "ip", "t", "c", "tcp flags & (syn|ack) == syn", "accept")),
    ]


@pytest.mark.parametrize("text, message", [
    ("ip link\nnft -f - <<EOF\ntable ip t {}\n", "rules.sh:2: the here-document never ends: no line `EOF` after it"),
    ("ip addr add '10.0.0.1/24 dev p0\n", "rules.sh:1: No closing quotation"),
    ("nft -f - <<\n", "rules.sh:1: `<<` without the word that ends the here-document"),
])
def test_a_setup_file_sh_could_not_read_is_refused_with_its_line(text, message):
    with pytest.raises(SetupFileError) as err:
        parse_setup(text, "rules.sh")
    assert str(err.value).startswith(message)


# the text and the diff, from journeys written by hand ------------------------------

def test_text_puts_a_local_packet_inbound_and_what_it_caused_outbound():
    reply = Journey("icmp_send type 3 code 3: 10.0.0.1 > 10.0.0.2",
                    [Hop("NF_OUTPUT", "ip t out", "ACCEPT", "policy"), Hop("NIC_TX", "p0", "XMIT")])
    refused = Journey("10.0.0.2 > 10.0.0.1 udp", [Hop("NF_INPUT", "ip t in", "ACCEPT", "policy"),
                                                 Hop("L4", "__udp4_lib_rcv", "", "dport 9 no socket")],
                      Drop(DropReason.NO_SOCKET, "L4", "__udp4_lib_rcv", "10.0.0.2 > 10.0.0.1 udp"), [reply])
    queued = Journey("10.0.0.2 > 10.0.0.1 udp", [Hop("ROUTING", "ip_route_input_slow", "LOCAL", "local"),
                                                Hop("SOCKET", "udp 7000", "QUEUED", "rmem 704/212992")])
    sent = Journey("10.0.0.1 > 10.0.1.2 udp", [Hop("SOCKET", "udp 7000", "SEND"), Hop("ROUTING", "ip_route_output"),
                                              Hop("NF_POSTROUTING", "ip t post", "ACCEPT", "policy")])
    trace = Trace("mock", "p0", [b"1", b"2"], [refused, queued, sent], {"p0": [], "p1": []})
    assert render_text(trace) == """\
journey on mock: 2 frames sent into p0

packet 1: 10.0.0.2 > 10.0.0.1 udp
  inbound
     1  NF_INPUT[ip t in] -> ACCEPT (policy)
     2  L4[__udp4_lib_rcv] (dport 9 no socket)
  => DROP NO_SOCKET at L4 in __udp4_lib_rcv
    caused: icmp_send type 3 code 3: 10.0.0.1 > 10.0.0.2
      outbound
         1  NF_OUTPUT[ip t out] -> ACCEPT (policy)
         2  NIC_TX[p0] -> XMIT
      => left p0

packet 2: 10.0.0.2 > 10.0.0.1 udp
  inbound
     1  ROUTING[ip_route_input_slow] -> LOCAL (local)
     2  SOCKET[udp 7000] -> QUEUED (rmem 704/212992)
  => queued on socket udp 7000

packet 3: 10.0.0.1 > 10.0.1.2 udp
  outbound
     1  SOCKET[udp 7000] -> SEND
     2  ROUTING[ip_route_output]
     3  NF_POSTROUTING[ip t post] -> ACCEPT (policy)
  => no drop; last seen at NF_POSTROUTING[ip t post] -> ACCEPT (policy)

frames out
  p0, p1: none
"""


def test_diff_aligns_what_both_observe_and_marks_each_difference():
    frame = Ether(src=P1.mac, dst=P1.peer_mac) / IP(src="10.0.0.2", dst="10.0.1.2", ttl=63) / UDP(sport=53, dport=53)
    mock = Journey("10.0.0.2 > 10.0.1.2 udp", [
        Hop("NIC_RX", "p0", "DMA"),  # the lab does not see it: not compared
        Hop("NF_PREROUTING", "nf_conntrack_in", "NEW"),  # nor this
        Hop("NF_PREROUTING", "inet f pre", "ACCEPT", "policy"),
        Hop("NF_FORWARD", "inet f forward", "ACCEPT", "policy"),
        Hop("NF_POSTROUTING", "inet f post", "ACCEPT", "policy"),
        Hop("TC_EGRESS", "p1", "OK")])
    dut = Journey("10.0.0.2 > 10.0.1.2 udp", [
        Hop("NF_PREROUTING", "inet f pre", "ACCEPT", "policy"),
        Hop("NF_FORWARD", "inet f forward", "DROP", "rule 3: udp dport 53 drop"),
        Hop("TC_EGRESS", "p1", "", "ran, not dropped")],
        Drop(DropReason.NETFILTER_DROP, "NF_FORWARD", "nft_do_chain"))
    text, differences = render_diff(Trace("mock", "p0", [b""], [mock], {"p0": [], "p1": [bytes(frame)]}),
                                    Trace("dut", "p0", [b""], [dut], {"p0": [], "p1": []}))
    assert differences == 4
    assert text == """\
journey diff: 1 frame sent into p0 on mock and dut
compared: netfilter chains and NAT, XDP and TC runs, drops (what both observe), and the frames out; \
< mock only, > dut only, ! differs

packet 1
  mock  10.0.0.2 > 10.0.1.2 udp
  dut   10.0.0.2 > 10.0.1.2 udp
      NF_PREROUTING[inet f pre] -> ACCEPT (policy)
    ! NF_FORWARD[inet f forward]
        mock: NF_FORWARD[inet f forward] -> ACCEPT (policy)
        dut: NF_FORWARD[inet f forward] -> DROP (rule 3: udp dport 53 drop)
    < NF_POSTROUTING[inet f post] -> ACCEPT (policy)
      TC_EGRESS[p1] -> OK
    ! drop
        mock: no drop
        dut: DROP NETFILTER_DROP at NF_FORWARD in nft_do_chain

frames out
    p0: none
  < p1: Ether / IP / UDP 10.0.0.2:domain > 10.0.1.2:domain len=42

4 differences
"""


def test_diff_names_the_fields_of_a_frame_that_left_differently():
    def forwarded(ttl: int) -> bytes:
        return bytes(Ether(src=P1.mac, dst=P1.peer_mac) / IP(src="10.0.0.2", dst="10.0.1.2", ttl=ttl) / UDP())

    text, differences = render_diff(Trace("mock", "p0", [b""], [], {"p1": [forwarded(63)]}),
                                    Trace("dut", "p0", [b""], [], {"p1": [forwarded(62)]}))
    assert differences == 1
    assert "\n      dut differs from mock (expected: mock, got: dut): IP.ttl: expected 63, got 62; IP.chksum:" in text


def test_diff_takes_an_icmp_error_that_differs_only_in_linuxs_hashed_ip_id_as_the_same():
    def port_unreachable(ident: int) -> bytes:
        about = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=9)
        return bytes(Ether(src=P0.mac, dst=P0.peer_mac) / IP(src="10.0.0.1", dst="10.0.0.2", tos=0xC0, id=ident) /
                     ICMP(type=3, code=3) / bytes(about))

    text, differences = render_diff(Trace("mock", "p0", [b""], [], {"p0": [port_unreachable(55125)]}),
                                    Trace("dut", "p0", [b""], [], {"p0": [port_unreachable(17848)]}))
    assert differences == 0
    assert ("      masked IP.id: ICMP sent without DF: IP ID from Linux's hashed generator; "
            "IP.chksum: covers the unpredictable IP ID\n") in text
    _, differences = render_diff(Trace("mock", "p0", [b""], [], {"p0": [port_unreachable(1)]}),
                                 Trace("dut", "p0", [b""], [], {"p0": [port_unreachable(1)[:-1] + b"\xff"]}))
    assert differences == 1


def test_diff_compares_hops_as_they_print():
    class Rendered:  # a summary the mock renders when printed
        def __str__(self) -> str:
            return "daddr 10.0.1.2:5353 -> 10.0.2.2:53"

    def dnat(summary) -> list[Journey]:
        return [Journey("10.0.0.2 > 10.0.1.2 udp", [Hop("NF_PREROUTING", "nf_nat_packet", "DNAT", summary)])]

    _, differences = render_diff(Trace("mock", "p0", [b""], dnat(Rendered())),
                                 Trace("dut", "p0", [b""], dnat("daddr 10.0.1.2:5353 -> 10.0.2.2:53")))
    assert differences == 0


def test_diff_pairs_packets_that_only_program_runs_and_a_drop_identify_wherever_the_lab_reports_them():
    """A runt and a datagram both passed by XDP and both dropped: the lab reports
    the runt's drop late (its tracer names it from a header the frame lacks), and
    merges the XDP run into that journey (xdpstats.merge()): paired by drop and
    runs, as packets without netfilter hops are, not by position."""
    xdp = Hop("XDP", "p0", "PASS")
    runt = Journey("ethertype 0x0800 len=14", [xdp], Drop("IP_INHDR", "IP_RCV", "ip_rcv_core"))
    icmp = Journey("192.0.2.7 > 198.51.100.1 icmp", [xdp], Drop("NOT_SPECIFIED", "ROUTING", "ip_rcv_finish_core"))
    lab_runt = Journey("ipv4", [xdp], runt.drop)
    _, differences = render_diff(Trace("mock", "p0", [b"", b""], [runt, icmp]),
                                 Trace("dut", "p0", [b"", b""], [icmp, lab_runt]))
    assert differences == 0
    _, differences = render_diff(Trace("mock", "p0", [b"", b""], [runt, icmp]),
                                 Trace("dut", "p0", [b"", b""], [icmp, Journey("ipv4", [], runt.drop)]))
    assert differences == 1  # the run the lab lacks still counts


# the netns lab ---------------------------------------------------------------------

needs_lab = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft", "bpftrace")),
                               reason="the netns lab needs root, iproute2, nftables and bpftrace")


@needs_lab
def test_trace_and_diff_on_the_netns_lab(rules):
    trace = journey("trace", "--target", "dut", "--setup", rules, "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=54)")
    assert (trace.returncode, trace.stderr) == (0, "")
    assert trace.stdout == """\
journey on dut: 1 frame sent into p0

packet 1: 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
  forward
     1  NF_FORWARD[inet f forward] -> DROP (rule 3: ip daddr 10.0.1.2 udp dport 54 counter drop)
  => DROP NETFILTER_DROP at NF_FORWARD in nft_do_chain

frames out
  p0, p1, p2: none
"""
    diff = journey("diff", "--setup", rules, "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=53)")
    assert (diff.returncode, diff.stderr) == (0, "")
    drawn = journey("diff", "--setup", rules, "--format", "svg", "--port", "p0", "IP(dst='10.0.1.2')/UDP(dport=53)")
    title = next(ET.fromstring(drawn.stdout).iter("{http://www.w3.org/2000/svg}text")).text
    assert drawn.returncode == 0
    assert title.startswith("mock: 1 packet on 1 distinct path | dut: 1 packet on 1 distinct path; 0 ")
    assert diff.stdout.endswith("""
packet 1
  mock  02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
  dut   10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
      NF_FORWARD[inet f forward] -> ACCEPT (rule 2: udp dport 53 counter accept)

frames out
    p0: none
    p1: Ether / IP / UDP 10.0.0.2:domain > 10.0.1.2:domain len=42
    p2: none

same on mock and dut
""")


needs_standin = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "clang"))
    or not os.access("/usr/sbin/sshd", os.X_OK),
    reason="the stand-in lab needs root, iproute2, ethtool, procps, clang and openssh-server")


@needs_standin
def test_trace_on_a_lab_station(rules, tmp_path):
    with StandinLab(1, tmp_path / "lab") as lab:
        run = journey("trace", "--target", "dut", "--lab", str(lab.lab_file), "--setup", rules, "--port", "p0",
                      "IP(dst='10.0.1.2')/UDP(dport=54)")
    assert run.returncode == 0, run.stderr  # stderr may warn of a station recovered from a killed session
    assert run.stdout == """\
journey on lab: 1 frame sent into p0

packet 1: 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 len=28
  forward
     1  NF_FORWARD[inet f forward] -> DROP (rule 3: ip daddr 10.0.1.2 udp dport 54 counter drop)
  => DROP NETFILTER_DROP at NF_FORWARD in nft_do_chain

frames out
  p0, p1, p2: none
"""


def test_lab_with_the_mock_is_refused():
    run = journey("trace", "--lab", "lab.yaml", "--port", "p0", "IP()")
    assert run.returncode == 2
    assert "journey: error: --lab=lab.yaml drives a lab DUT: use it with --target=dut" in run.stderr
