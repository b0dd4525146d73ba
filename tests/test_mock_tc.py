"""The mock's TC: the tc front end (parsing, printing, the kernel's refusals) and
the clsact datapath (verdicts, order against XDP, the netdev hook and netfilter)."""
from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.bpf import BpfRuntime
from harness.mockkernel.bpf.tag import bpf_prog_calc_tag
from harness.mockkernel import target as mock_target
from harness.mockkernel.kernel import Kernel
from harness.target import PORTS, CommandError
from test_mock_qdisc import steps
from test_nft import RealTools

GOLDEN = Path(__file__).resolve().parent / "golden" / "tc"


@pytest.fixture(scope="module")
def obj(bpf_objects):
    """Object paths by program name, as text for the command lines."""
    return {n: str(bpf_objects[n]) for n in ("tc_drop_udp", "tc_set_mark", "tc_verdict", "xdp_drop_udp",
                                             "xdp_global_data", "xdp_blocklist")}


@pytest.fixture
def k():
    kernel = Kernel()
    sh(kernel, "ip addr add 10.0.0.1/24 dev p0")
    return kernel


def sh(k, line: str) -> str:
    return mock_target.sh(k, line.split())


def udp(payload: bytes = b"x", dport: int = 9) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.0.1") /
                 UDP(sport=1, dport=dport) / payload)


@pytest.mark.parametrize("name, tag", [("tc_drop_udp", "2cadf8b09a359990"), ("xdp_global_data", "f7250fed65f1942f"),
                                       ("xdp_blocklist", "cb29dc2c8d4775af")])
def test_program_tag_is_sha256_of_the_loaded_instructions_with_map_references_zeroed(obj, name, tag):
    # tags read on the lab (6.18): a plain program, BPF-to-BPF with global data, a map
    assert bpf_prog_calc_tag(BpfRuntime().load_object(obj[name]).program()) == tag


def test_filter_show_prints_the_classifier_and_each_program_as_tc_does(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, f"tc filter add dev p0 ingress pref 10 handle 5 protocol ip bpf obj {obj['tc_set_mark']} sec tc")
    lines = sh(k, "tc filter show dev p0 ingress").split("\n")
    assert lines[0] == "filter protocol ip pref 10 bpf chain 0 "
    assert lines[1].startswith("filter protocol ip pref 10 bpf chain 0 handle 0x5 tc_set_mark.o:[tc] not_in_hw id ")
    assert lines[1].endswith(" name tc_set_mark tag ec27583e231bd0d0 jited ")
    assert lines[2] == "filter protocol all pref 49152 bpf chain 0 "
    assert " handle 0x1 tc_drop_udp.o:[tc] direct-action not_in_hw " in lines[3]
    assert sh(k, "tc filter show dev p0 egress") == ""


def test_a_filter_without_pref_goes_one_below_the_lowest(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 egress bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, f"tc filter replace dev p0 egress bpf da obj {obj['tc_drop_udp']} sec tc")
    assert [line.split()[4] for line in sh(k, "tc filter show dev p0 egress").splitlines()[::2]] == \
        ["49151", "49152"]


def test_qdisc_show_lists_clsact_after_the_root_and_counts_with_s(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    assert "qdisc clsact ffff: dev p0 parent ffff:fff1 \n" in sh(k, "tc qdisc show")
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    k.receive("p0", [udp(b"x"), udp(b"xyz")])
    # ingress counts the L3 length (qdisc_pkt_len before the MAC header is pushed back)
    assert " Sent 60 bytes 2 pkt (dropped 2, overlimits 0 requeues 0) \n" in sh(k, "tc -s qdisc show dev p0")


@pytest.mark.parametrize("line, message, code", [
    ("tc filter add dev p0 ingress bpf da obj {tc_drop_udp} sec tc",
     "Error: Parent Qdisc doesn't exists.\nWe have an error talking to the kernel", 2),
    ("tc qdisc del dev p0 clsact", "Error: Cannot find specified qdisc on specified device.", 2),
])
def test_without_clsact_the_kernel_refuses(k, obj, line, message, code):
    with pytest.raises(CommandError) as info:
        sh(k, line.format(**obj))
    assert message in str(info.value) and info.value.returncode == code


def test_kernel_and_loader_refusals_with_clsact(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, "tc qdisc replace dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress pref 10 handle 5 protocol ip bpf da obj {obj['tc_drop_udp']} sec tc")
    cases = [("tc qdisc add dev p0 clsact", "Error: Exclusivity flag on, cannot modify."),
             (f"tc filter add dev p0 ingress pref 10 handle 5 protocol ip bpf da obj {obj['tc_drop_udp']} sec tc",
              "Error: Filter already exists."),
             (f"tc filter add dev p0 ingress pref 10 bpf da obj {obj['tc_drop_udp']} sec tc",
              "Error: Protocol mismatch for filter with specified priority."),
             ("tc filter del dev p0 ingress pref 99", "Error: Filter with specified priority/protocol not found."),
             (f"tc filter add dev p0 ingress bpf da obj {obj['tc_set_mark']}",
              "object file doesn't contain sec classifier\nUnable to load program"),
             ("tc filter add dev p0 ingress bpf da obj /nonexistent.o sec tc", "Cannot initialize ELF context!"),
             (f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc bogus", 'What is "bogus"?')]
    for line, message in cases:
        with pytest.raises(CommandError, match=message.replace("?", r"\?")):
            sh(k, line)


# tc's own errors and the kernel's for what no test object is needed for (the golden
# answers hold the command lines: an object's path differs between checkouts)
FILTER_ERRORS = {
    "unknown kind without clsact": ["tc filter add dev p0 ingress foo"],
    "unknown kind": ["tc qdisc add dev p0 clsact", "tc filter add dev p0 ingress foo",
                     "tc filter add dev p0 ingress pref 3 protocol ip foo"],
    "unknown kind with options": ["tc qdisc add dev p0 clsact", "tc filter add dev p0 ingress foo bar"],
    "unknown kind on htb": ["tc qdisc add dev p0 root handle 1: htb", "tc filter add dev p0 parent 1: foo",
                            "tc filter add dev p0 parent 2: foo"],
    "bpf mode": ["tc qdisc add dev p0 clsact", "tc filter add dev p0 ingress bpf foo",
                 "tc filter add dev p0 ingress bpf da foo"],
    "bpf option after the object": ["tc qdisc add dev p0 clsact",
                                    "tc filter add dev p0 ingress bpf obj /nonexistent.o foo"],
    "bpf without a program": ["tc qdisc add dev p0 clsact", "tc filter add dev p0 ingress bpf da"],
    "htb with no options": ["tc qdisc add dev p0 root htb", "tc qdisc del dev p0 root"],
}


@pytest.mark.parametrize("name", FILTER_ERRORS)
def test_filter_errors_are_real_tc_errors(name, request):
    """Issue 14: a tc error names the kind or option it refuses, as tc and the kernel do."""
    RealTools(request, GOLDEN, "tc iproute2-6.1.0, Linux 6.18").assert_same_as_real(
        steps(*FILTER_ERRORS[name], "tc filter show dev p0 ingress"), tools=("tc",))


@pytest.mark.parametrize("line, named", [("tc qdisc add dev p0 root sfq", "sfq"),
                                         ("tc qdisc add dev p0 root cake", "cake"),
                                         ("tc filter add dev p0 ingress matchall action drop", "matchall"),
                                         ("tc filter add dev p0 ingress u32 match ip dst 1.2.3.4", "u32"),
                                         ("tc -j qdisc show", "-j")])
def test_what_the_mock_does_not_model_is_an_error_naming_it(k, line, named):
    with pytest.raises(CommandError, match="not modelled") as info:
        sh(k, line)
    assert named in str(info.value)


def test_filter_del_without_pref_empties_the_direction_and_qdisc_del_removes_filters(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, "tc filter del dev p0 ingress")
    assert sh(k, "tc filter show dev p0 ingress") == ""
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, "tc qdisc del dev p0 clsact")
    k.receive("p0", [udp()])
    assert [d.reason for d in k.tracer.drops] == ["NO_SOCKET"]


def test_tc_shot_at_ingress_drops_before_the_netdev_hook_and_prerouting(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    mock_target.sh(k, ["nft", "-f", "-"], 'table netdev nd {\n chain in {\n type filter hook ingress device "p0" priority 0;\n'
                             '  counter\n }\n}\n')
    k.receive("p0", [udp()])
    journey = k.tracer.journeys[0]
    assert journey.stages[-1] == "TC_INGRESS" and journey.drop.reason == "TC_INGRESS"


def test_unspec_falls_through_to_the_next_filter_and_ok_stops(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress pref 2 bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, f"tc filter add dev p0 ingress pref 1 bpf da obj {obj['tc_verdict']} sec tc")
    k.receive("p0", [udp(bytes([0xFF])), udp(bytes([0]))])
    first, second = k.tracer.journeys[:2]
    assert [h.verdict for h in first.hops if h.stage == "TC_INGRESS"] == ["UNSPEC", "SHOT"]
    assert [h.verdict for h in second.hops if h.stage == "TC_INGRESS"] == ["OK"]


def test_without_direct_action_a_nonzero_classid_is_a_match_that_continues(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress bpf obj {obj['tc_drop_udp']} sec tc")
    k.receive("p0", [udp()])
    assert [d.reason for d in k.tracer.drops] == ["NO_SOCKET"]  # SHOT (2) is classid 2 here, not an action


def test_tc_egress_shot_drops_after_postrouting_with_tc_egress(k, obj):
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 egress bpf da obj {obj['tc_drop_udp']} sec tc")
    sh(k, "ip neigh replace 10.0.0.2 lladdr 02:00:00:00:01:01 dev p0 nud permanent")
    k.receive("p0", [udp()])  # the ICMP port unreachable goes out; TC egress lets ICMP pass
    assert k.nics["p0"].wire
    from harness.mockkernel.ipv4 import udp as udp4
    sk = udp4.UdpSock(0, 7, 1 << 20)
    udp4.udp_sendmsg(k, sk, b"out", 0x0A000002, 9)
    drop = k.tracer.drops[-1]
    assert (drop.reason, drop.stage, drop.location) == ("TC_EGRESS", "TC_EGRESS", "__dev_queue_xmit")


def test_generic_xdp_runs_on_the_skb_before_tc_and_native_and_generic_exclude_each_other(k, obj):
    sh(k, f"ip link set dev p0 xdpgeneric obj {obj['xdp_drop_udp']} sec xdp")
    sh(k, "tc qdisc add dev p0 clsact")
    sh(k, f"tc filter add dev p0 ingress bpf da obj {obj['tc_drop_udp']} sec tc")
    k.receive("p0", [udp()])
    journey = k.tracer.journeys[0]
    assert "SKB" in journey.stages and journey.stages[-1] == "XDP"
    assert (journey.drop.reason, journey.drop.location) == ("NOT_SPECIFIED", "do_xdp_generic")
    with pytest.raises(CommandError, match="Native and generic XDP can't be active at the same time"):
        sh(k, f"ip link set dev p0 xdp obj {obj['xdp_drop_udp']} sec xdp")
    with pytest.raises(CommandError, match="XDP program already attached"):
        sh(k, f"ip link set dev p0 xdpgeneric obj {obj['xdp_drop_udp']} sec xdp")
    assert " xdpgeneric qdisc noqueue " in sh(k, "ip link show dev p0")
    sh(k, "ip link set dev p0 xdpgeneric off")
    assert " xdp" not in sh(k, "ip link show dev p0")


def test_ip_link_xdp_without_sec_asks_for_iproute2_s_default_section_prog(k, obj):
    """bpf_prog_to_default_section(BPF_PROG_TYPE_XDP) is "prog" (lib/bpf_legacy.c):
    an object whose one program is in SEC("xdp") is refused by load_bpf_object()
    (lib/bpf_libbpf.c) as on the lab, not attached by its first program."""
    with pytest.raises(CommandError, match="object file doesn't contain sec prog") as refused:
        sh(k, f"ip link set dev p0 xdpgeneric obj {obj['xdp_drop_udp']}")
    assert refused.value.returncode == 255
    assert "xdpgeneric" not in sh(k, "ip link show dev p0")
