"""HMARK and cluster on the mock (netfilter/xt_hmark.py): what iptables
1.8.9 refuses and saves beyond the extensions/*.t cases the conformance
runner replays, the hash each computes (include/linux/jhash.h), and the
journey hop HMARK records. Expected marks are the real kernel's (6.18),
read on the netns lab by suites/test_iptables_steering.py's mark-bit rules.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, UDP

from harness.target import CommandError
from harness.testing import forward


def saved(target) -> list[str]:
    return [line for line in target.sh("iptables-save").splitlines() if line.startswith("-A")]


@pytest.mark.parametrize("tuple_words, saved_options", [
    ("s,D,sp,dport,p", "--hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-sport-mask 0xffff "
                       "--hmark-dport-mask 0xffff --hmark-proto-mask 0xffff"),
    ("ct,spi", "--hmark-spi-mask 0xffffffff --hmark-tuple ct"),
])
def test_hmark_tuple_words_are_any_leading_part_of_a_name_and_save_as_their_masks(mock_router, tuple_words,
                                                                                 saved_options):
    """hmark_parse(): strncasecmp() over the word's length; each word sets
    its mask all ones, saved as that option (HMARK_ip4_save())."""
    target, _ = mock_router
    target.sh(f"iptables -A INPUT -j HMARK --hmark-tuple {tuple_words} --hmark-rnd 1 --hmark-mod 2")
    rest = saved_options.split(" --hmark-tuple")
    assert saved(target) == [f"-A INPUT -j HMARK {rest[0]} --hmark-rnd 0x00000001 --hmark-mod 2"
                             + (" --hmark-tuple" + rest[1] if len(rest) > 1 else "")]


@pytest.mark.parametrize("options, message", [
    ("--hmark-tuple src,bogus --hmark-rnd 1 --hmark-mod 2", 'Bad type "bogus"'),
    ("--hmark-tuple ,src --hmark-rnd 1 --hmark-mod 2", 'Bad type ",src"'),
    ("--hmark-tuple src, --hmark-rnd 1 --hmark-mod 2", '"--hmark-tuple" requires a list of types'),
    ("--hmark-tuple src --hmark-src-prefix 24 --hmark-rnd 1 --hmark-mod 2",
     'HMARK: option "--hmark-src-prefix" can only be used once.'),
    ("--hmark-tuple src --hmark-mod 2", "--hmark-rnd is mandatory"),
    ("--hmark-rnd 1 --hmark-mod 2", "you have to specify --hmark-tuple at least"),
    ("--hmark-tuple src --hmark-rnd 1 --hmark-mod 0", 'HMARK: bad value for option "--hmark-mod", or out of range '
                                                      '(1-4294967295).'),
    ("--hmark-src-prefix abc --hmark-rnd 1 --hmark-mod 2", 'HMARK: bad value for option "--hmark-src-prefix", '
                                                           'neither a valid network mask nor valid CIDR (0-32).'),
    ("--hmark-spi 1 --hmark-sport 2 --hmark-rnd 1 --hmark-mod 2", "RULE_APPEND failed (Invalid argument)"),
])
def test_hmark_refuses_as_libxt_hmark_and_hmark_tg_check_do(mock_router, refusal, options, message):
    target, _ = mock_router
    assert message in refusal(target, f"iptables -A INPUT -j HMARK {options}")


def test_hmark_prefix_is_a_length_or_a_netmask_and_a_mask_that_is_no_prefix_is_all_ones(mock_router):
    """xtopt_parse_plen(): 0..32, else a numeric address as a mask (`33` is
    0.0.0.33, no prefix: xtopt_parse_plenmask() leaves all ones, saved as 32),
    as iptables 1.8.9 saves them."""
    target, _ = mock_router
    for value in ("33", "255.255.0.0", "255.0.255.0", "0x10"):
        target.sh(f"iptables -A INPUT -j HMARK --hmark-src-prefix {value} --hmark-rnd 1 --hmark-mod 2")
    assert [line.split()[5] for line in saved(target)] == ["32", "16", "32", "16"]


def test_hmark_and_cluster_in_ip6tables_save_and_list_as_ip6tables_does(mock_router):
    """HMARK_ip6_save() (prefixes up to 128, a netmask as its length, no
    inet_aton() forms: `129` is refused) and HMARK_ip6_print() (a /128
    printed as nothing); cluster alike in both families."""
    target, _ = mock_router
    for options in ("--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 1 --hmark-mod 2",
                    "--hmark-src-prefix 64 --hmark-dst-prefix 48 --hmark-rnd 1 --hmark-mod 2 --hmark-offset 3",
                    "--hmark-src-prefix ffff:ffff:: --hmark-rnd 1 --hmark-mod 2"):
        target.sh(f"ip6tables -A INPUT -j HMARK {options}")
    target.sh("ip6tables -t mangle -A PREROUTING -m cluster --cluster-total-nodes 2 --cluster-local-node 1 "
              "--cluster-hash-seed 3")
    with pytest.raises(CommandError, match=r"neither a valid network mask nor valid CIDR \(0-128\)\."):
        target.sh("ip6tables -A INPUT -j HMARK --hmark-src-prefix 129 --hmark-rnd 1 --hmark-mod 2")
    assert [line for line in target.sh("ip6tables-save").splitlines() if line.startswith("-A")] == [
        "-A PREROUTING -m cluster --cluster-local-nodemask 0x00000001 --cluster-total-nodes 2 "
        "--cluster-hash-seed 0x00000003",
        "-A INPUT -j HMARK --hmark-src-prefix 128 --hmark-dst-prefix 128 --hmark-sport-mask 0xffff "
        "--hmark-dport-mask 0xffff --hmark-proto-mask 0xffff --hmark-rnd 0x00000001 --hmark-mod 2",
        "-A INPUT -j HMARK --hmark-src-prefix 64 --hmark-dst-prefix 48 --hmark-rnd 0x00000001 --hmark-mod 2 "
        "--hmark-offset 3",
        "-A INPUT -j HMARK --hmark-src-prefix 32 --hmark-rnd 0x00000001 --hmark-mod 2"]
    assert target.sh("ip6tables -L INPUT -n").splitlines()[2:] == [
        "HMARK      0    --  ::/0                 ::/0                 HMARK mod 2 src-prefix  dst-prefix  "
        "sport-mask 0xffff dport-mask 0xffff proto-mask 0xffff rnd 0x1 ",
        "HMARK      0    --  ::/0                 ::/0                 HMARK mod 2 + 0x3 src-prefix 64 "
        "dst-prefix 48 rnd 0x1 ",
        "HMARK      0    --  ::/0                 ::/0                 HMARK mod 2 src-prefix 32 rnd 0x1 "]
    assert "jhash ct original saddr mod 2 seed 0x00000003 eq 1 meta pkttype set host" in target.sh(
        "nft list table ip6 mangle")


def test_hmark_leaves_its_hop_in_the_journey_and_the_kernels_mark(mock_router):
    """The mark the real kernel gave 10.0.0.2:1000 > 10.0.1.2:53 UDP with
    the full tuple, rnd 0xcafe, mod 0xffffffff: 486712579."""
    target, (h0, h1, _) = mock_router
    target.sh("iptables -A FORWARD -j HMARK --hmark-tuple src,dst,sport,dport,proto --hmark-rnd 0xcafe "
              "--hmark-mod 0xffffffff")
    target.sh("iptables -A FORWARD -m mark --mark 486712579 -j DROP")
    target.send(h0.port, h0.to_dut(dst=h1.ip) / UDP(sport=1000, dport=53))
    target.expect_nothing()
    hops = [(hop.stage, hop.verdict, str(hop.summary)) for hop in target.journeys()[-1].hops
            if hop.verdict in ("HMARK", "DROP")]
    assert hops == [("NF_FORWARD", "HMARK", f"mark 0x{486712579:x}"),
                    ("NF_FORWARD", "DROP", f"rule 3: meta mark 0x{486712579:x} counter drop")]


def test_hmark_leaves_the_mark_of_an_icmp_error_quoting_too_short_a_header(mock_router):
    """get_inner_hdr() then skb_header_pointer() of the quoted header fails:
    hmark_tg_v4() returns XT_CONTINUE without touching the mark."""
    target, (h0, h1, _) = mock_router
    target.sh("iptables -A FORWARD -j HMARK --hmark-tuple src --hmark-rnd 1 --hmark-mod 10 --hmark-offset 5")
    target.sh("iptables -A FORWARD -m mark --mark 0 -m comment --comment unmarked")
    forward(target, h0, h1, ICMP(type=3, code=3) / b"\x45\x00\x00")
    assert "[1:" in next(line for line in target.sh("iptables-save -c").splitlines() if "unmarked" in line)


@pytest.mark.parametrize("rule, message", [
    ("-m cluster --cluster-total-nodes 2 --cluster-local-nodemask 4 --cluster-hash-seed 1",
     "cluster match: `--cluster-local-nodemask' too big for `--cluster-total-nodes'"),
    ("-m cluster --cluster-total-nodes 2 --cluster-local-node 3 --cluster-hash-seed 1",
     "cluster match: `--cluster-local-node' must be <= `--cluster-total-nodes'"),
    ("-m cluster --cluster-total-nodes 33 --cluster-local-node 1 --cluster-hash-seed 1",
     'cluster: bad value for option "--cluster-total-nodes", or out of range (1-32).'),
    ("-m cluster --cluster-total-nodes 4 --cluster-local-node 1 --cluster-local-nodemask 1 --cluster-hash-seed 1",
     'cluster: option "--cluster-local-node" cannot be used together with "--cluster-local-nodemask".'),
])
def test_cluster_refuses_as_libxt_cluster_does(mock_router, refusal, rule, message):
    target, _ = mock_router
    assert message in refusal(target, f"iptables -t mangle -A PREROUTING {rule}")


def test_cluster_saves_a_node_as_its_mask_and_translates_as_nft_lists_it(mock_router):
    target, _ = mock_router
    target.sh("iptables -t mangle -A PREROUTING -m cluster --cluster-total-nodes 8 ! --cluster-local-node 3 "
              "--cluster-hash-seed 7")
    target.sh("iptables -t mangle -A PREROUTING -m cluster --cluster-total-nodes 8 --cluster-local-nodemask 5 "
              "--cluster-hash-seed 7")
    assert [line for line in target.sh("iptables-save -t mangle").splitlines() if line.startswith("-A")] == [
        "-A PREROUTING -m cluster ! --cluster-local-nodemask 0x00000004 --cluster-total-nodes 8 "
        "--cluster-hash-seed 0x00000007",
        "-A PREROUTING -m cluster --cluster-local-nodemask 0x00000005 --cluster-total-nodes 8 "
        "--cluster-hash-seed 0x00000007"]
    listed = target.sh("nft list chain ip mangle PREROUTING")
    assert "jhash ct original saddr mod 8 seed 0x00000007 eq 3 meta pkttype set host" in listed
    assert "jhash ct original saddr mod 8 seed 0x00000007 { 0, 2 } meta pkttype set host" in listed
