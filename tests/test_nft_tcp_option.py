"""`tcp option maxseg ...` and `rt mtu` on the mock (netfilter/nft_exthdr.py,
nft_rt.py): listed and refused as nft 1.0.6 and the kernel do (answers recorded
in tests/golden/nft/ by tests/golden/record_nft), and run on crafted segments
with expected values written out by hand."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP

from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, NftPktinfo
from harness.mockkernel.netfilter.core import NF_DROP
from harness.mockkernel.netfilter.nft_exthdr import TcpOption, TcpOptionReset, TcpOptionSet
from harness.mockkernel.netfilter.nft_rt import TCP_MSS_DEFAULT, Rt, get_tcpmss
from harness.mockkernel.ipv4.route import ip_route_input, ip_route_output
from harness.mockkernel.netfilter.core import NF_INET_FORWARD, NFPROTO_IPV4, NfHookState
from harness.mockkernel.target import sh
from harness.mockkernel.wire.checksum import checksum
from test_nft import _without_json_handles, real_tools  # noqa: F401  (a fixture, used by name)

FORWARD_CHAIN = "table ip t {\n\tchain f {\n\t\ttype filter hook forward priority mangle; policy accept;\n\t\t%s\n\t}\n}\n"

RULES = [
    "tcp flags syn tcp option maxseg size set rt mtu",
    "tcp flags syn / syn,rst tcp option maxseg size set rt mtu",
    "meta l4proto tcp tcp option maxseg size set rt ip mtu",
    "tcp option mss size set 0x500",
    "tcp option maxseg size > 1400 tcp option maxseg size set 1300 counter",
    "tcp option maxseg size != 1400",
    "tcp option maxseg size 1000-1400",
    "tcp option maxseg size { 1000, 1400 }",
    "tcp option maxseg length 4",
    "tcp option maxseg exists",
    "tcp option maxseg missing accept",
    "rt mtu < 1400 drop",
    "tcp option eol exists", "tcp option nop exists", "tcp option window count 7", "tcp option sack-perm exists",
    "tcp option sack0 left 1", "tcp option sack2 right 2", "tcp option timestamp tsval 1 tcp option timestamp tsecr 2",
    "tcp option mptcp subtype { 0, 2 }", "tcp option md5sig exists", "tcp option fastopen length 2",
    "tcp option 255 missing", "tcp option 2 exists", "tcp option @255,8,8 255", "reset tcp option mptcp",
    "reset tcp option 2", "reset tcp option 123", "tcp option sack window 1", "tcp option 256 exists",
]


@pytest.mark.parametrize("rule", RULES)
def test_tcp_option_and_rt_mtu_rules_list_back_as_real_nft_lists_them(rule, real_tools):
    steps = [(["nft", "-f", "-"], FORWARD_CHAIN % rule), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


SETUP = """table ip t {
\tchain pre { type filter hook prerouting priority 0; }
\tchain inp { type filter hook input priority 0; }
\tchain out { type filter hook output priority 0; }
\tchain post { type filter hook postrouting priority 0; }
\tchain f { type filter hook forward priority 0; }
\tchain reg { }
}
table netdev nd {
\tchain i { type filter hook ingress device p0 priority 0; }
}
"""
COMMANDS = [
    "add rule ip t pre tcp option maxseg size set rt mtu",  # nft_rt_validate(): no route at prerouting
    "add rule ip t inp rt mtu 1400",
    "add rule ip t out tcp option maxseg size set rt mtu",
    "add rule ip t post tcp option maxseg size set rt mtu",
    "add rule netdev nd i tcp option maxseg size set rt mtu",
    "add rule ip t reg tcp option maxseg size set rt mtu",  # a regular chain is checked where it is reached
    "add rule ip t f jump reg",
    "add rule ip t pre jump reg",
    "add rule ip t f tcp option maxseg size set 70000",
    "add rule ip t f tcp option maxseg size 70000",
    "add rule ip t f tcp option maxseg size set foo",
    "add rule ip t f tcp option foo size 1",
    "add rule ip t f rt mtu set 1400",
    "-a list ruleset",
]


def test_rt_mtu_is_refused_where_no_route_is_and_bad_values_as_real_nft(real_tools):
    steps = [(["nft", "-f", "-"], SETUP)] + [(["nft", *c.split()], None) for c in COMMANDS]
    real_tools.assert_same_as_real(steps)


# ------------------------------------------------------------------ the datapath, by hand

def _pkt(k: Kernel, segment: bytes, frag: int = 0) -> NftPktinfo:
    """The segment from 10.0.0.2 to 10.0.1.2, its checksum filled in, as the
    forward hook sees it (routed out of p1)."""
    segment = bytearray(segment)
    segment[16:18] = bytes(2)
    pseudo = bytes([10, 0, 0, 2, 10, 0, 1, 2, 0, 6]) + len(segment).to_bytes(2, "big")
    segment[16:18] = checksum(pseudo + segment).to_bytes(2, "big")
    skb = alloc_skb(bytes(IP(src="10.0.0.2", dst="10.0.1.2", frag=frag, proto=6) / bytes(segment)))
    skb.net, skb.dev, skb.protocol = k, k.dev_by_name("p0"), 0x0800
    skb.network_header = skb.data
    skb.dst = ip_route_input(k, 0x0A000102, 0x0A000002, 0, k.dev_by_name("p0"))
    return NftPktinfo(skb, NfHookState(NF_INET_FORWARD, NFPROTO_IPV4, skb.dev, k.dev_by_name("p1"), k))


def _router() -> Kernel:
    k = Kernel()
    sh(k, ["sysctl", "-w", "net.ipv4.ip_forward=1"])
    for i in range(2):
        sh(k, ["ip", "addr", "add", f"10.0.{i}.1/24", "dev", f"p{i}"])
    return k


def _ctx(k: Kernel) -> CompileCtx:
    return CompileCtx(k, "ip", "ip t f", {})


# kind 2 length 4 MSS 1460, behind what tcp_parse_options() would stop at
MSS_AFTER_EOL = bytes([0, 1, 2, 4, 0x05, 0xB4, 1, 1])


@pytest.mark.parametrize("options, size, present", [
    (bytes([2, 4, 0x05, 0xB4]), 1460, 1),
    (bytes([1, 1, 1, 2, 4, 0x02, 0x18, 0]), 536, 1),  # at an odd offset
    (MSS_AFTER_EOL, 1460, 1),  # nft_exthdr's walk steps over EOL as one byte
    (bytes([3, 3, 7, 0]), None, 0),  # window scale only
    (bytes([2, 3, 0x05, 0]), None, 1),  # an MSS of length 3 has no size field, but is there
    (bytes([1, 1, 2, 8]), None, 0),  # runs past the header
    (bytes([4, 0, 2, 4, 0x04, 0x00, 0, 0]), 1024, 1),  # a zero length counts as one byte
])
def test_the_option_walk_finds_what_nft_exthdr_finds(options, size, present):
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", dataofs=5 + len(options) // 4)) + options)
    assert TcpOption("maxseg", "size").load(_ctx(k))(pkt) == size
    assert TcpOption("maxseg", None).load(_ctx(k))(pkt) == present


def test_a_non_first_fragment_has_no_options_to_read():
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", options=[("MSS", 1460)])), frag=100)
    assert TcpOption("maxseg", "size").load(_ctx(k))(pkt) is None
    assert TcpOptionSet(TcpOption("maxseg", "size"), 1000).compile(_ctx(k))(pkt) == NFT_BREAK


@pytest.mark.parametrize("old, new, left, check_delta", [
    (1460, 1200, 1200, 0x05B4 - 0x04B0),
    (1200, 1460, 1200, 0),  # never raised
    (1460, 1460, 1460, 0),
    (0, 1, 0, 0),
])
def test_the_mss_is_only_lowered_with_the_checksum_updated(old, new, left, check_delta):
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", options=[("MSS", old)])))
    th = pkt.thoff
    before = int.from_bytes(pkt.buf[th + 16:th + 18], "big")
    assert TcpOptionSet(TcpOption("maxseg", "size"), new).compile(_ctx(k))(pkt) is None
    assert int.from_bytes(pkt.buf[th + 22:th + 24], "big") == left
    assert int.from_bytes(pkt.buf[th + 16:th + 18], "big") == (before + check_delta) % 0xFFFF
    segment = pkt.buf[th:pkt.end]
    pseudo = pkt.buf[pkt.nh + 12:pkt.nh + 20] + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    assert checksum(pseudo + segment) == 0, "an even offset: the incremental update is a valid checksum"


def test_a_segment_without_the_option_continues_the_rule_unchanged():
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", options=[("WScale", 7)])))
    before = bytes(pkt.buf)
    assert TcpOptionSet(TcpOption("maxseg", "size"), 1000).compile(_ctx(k))(pkt) is None
    assert bytes(pkt.buf) == before


@pytest.mark.parametrize("commands, mss", [
    ([], 1460),
    (["ip link set dev p1 mtu 1400"], 1360),
    (["ip link set dev p0 mtu 1280"], 1240),  # the route back to 10.0.0.2
    (["ip route add 10.0.1.2/32 dev p1 mtu 1300"], 1260),
    (["ip route add 10.0.0.2/32 dev p0 mtu 1100", "ip link set dev p1 mtu 1200"], 1060),
    (["ip route add 10.0.1.2/32 dev p1 mtu 40"], TCP_MSS_DEFAULT),  # no room for a segment
    (["ip route add 10.0.1.2/32 dev p1 mtu 41"], 1),
])
def test_rt_mtu_is_the_lower_route_mtu_of_both_directions_minus_40(commands, mss):
    k = _router()
    for command in commands:
        sh(k, command.split())
    assert Rt().load(_ctx(k))(_pkt(k, bytes(TCP(flags="S")))) == mss


def test_rt_mtu_of_a_route_through_loopback_is_ip_max_mtu_minus_40():
    k = _router()
    dst = ip_route_output(k, 0x0A000001)
    assert dst.dev.name == "lo" and get_tcpmss(k, dst, 0x0A000001) == 0xFFFF - 40


def test_rt_mtu_breaks_the_rule_before_the_packet_is_routed():
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", options=[("MSS", 1460)])))
    pkt.skb.dst = None
    assert Rt().load(_ctx(k))(pkt) is None
    assert TcpOptionSet(TcpOption("maxseg", "size"), Rt()).compile(_ctx(k))(pkt) == NFT_BREAK


# ------------------------------------------------------------------ every option nft 1.0.6 names

SACKED = bytes([1, 1, 5, 18]) + (100).to_bytes(4, "big") + (200).to_bytes(4, "big") + \
    (300).to_bytes(4, "big") + (400).to_bytes(4, "big") + bytes([1, 1])  # two blocks
TIMESTAMPED = bytes([1, 1, 8, 10]) + (7).to_bytes(4, "big") + (9).to_bytes(4, "big")
MPTCP = bytes([30, 4, 0x21, 0x81])  # subtype 2 (MP_JOIN), version/flags 1


@pytest.mark.parametrize("options, option, expected", [
    (SACKED, TcpOption("sack", "left"), 100), (SACKED, TcpOption("sack", "right"), 200),
    (SACKED, TcpOption("sack", "left", 1), 300), (SACKED, TcpOption("sack", "right", 1), 400),
    (SACKED, TcpOption("sack", "left", 2), None),  # a third block runs past the option: the rule breaks
    (SACKED, TcpOption("sack", "length"), 18), (SACKED, TcpOption("nop", None), 1),
    (SACKED, TcpOption("eol", None), 0),
    (TIMESTAMPED, TcpOption("timestamp", "tsval"), 7), (TIMESTAMPED, TcpOption("timestamp", "tsecr"), 9),
    (MPTCP, TcpOption("mptcp", "subtype"), 2), (MPTCP, TcpOption("mptcp", None), 1),
    (MPTCP, TcpOption(None, None, kind=30, raw=(16, 8)), 0x21), (MPTCP, TcpOption(None, None, kind=99), 0),
    (bytes([3, 3, 7, 0]), TcpOption("window", "count"), 7),
])
def test_each_option_field_loads_what_nft_exthdr_loads(options, option, expected):
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", dataofs=5 + len(options) // 4)) + options)
    assert option.load(_ctx(k))(pkt) == expected


def test_reset_overwrites_the_first_option_of_the_kind_with_nops_keeping_the_checksum_valid():
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", dataofs=8)) + bytes([1]) + MPTCP + bytes([3, 3, 7, 0, 0, 0, 0]))
    th = pkt.thoff
    assert TcpOptionReset(TcpOption("mptcp", None)).compile(_ctx(k))(pkt) is None
    assert bytes(pkt.buf[th + 20:th + 32]) == bytes([1, 1, 1, 1, 1, 3, 3, 7, 0, 0, 0, 0])
    segment = pkt.buf[th:pkt.end]
    pseudo = pkt.buf[pkt.nh + 12:pkt.nh + 20] + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    assert checksum(pseudo + segment) == 0, "an odd offset too: each byte is replaced in its 16-bit word"


def test_reset_of_an_option_running_past_the_header_drops_the_segment():
    k = _router()
    pkt = _pkt(k, bytes(TCP(flags="S", dataofs=6)) + bytes([30, 8, 0, 0]))
    assert TcpOptionReset(TcpOption("mptcp", None)).compile(_ctx(k))(pkt) == NF_DROP
