"""The SYN proxy on the mock (netfilter/nf_synproxy.py, nft_synproxy.py,
nf_conntrack_seqadj.py, xt_targets.py SynproxyTarget): listings as nft 1.0.6
and iptables 1.8.9 print them (seen in a scratch namespace), the hooks it
holds, sequence adjustment and the checksum nft_synproxy_do_eval() uses.
The packet path is pinned on both targets by suites/test_nft_synproxy.py."""
from __future__ import annotations

import json
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_POST_ROUTING
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IPS_SEQ_ADJUST,
                                                       NfConn, Tuple)
from harness.mockkernel.netfilter.nf_conntrack_seqadj import nf_ct_seq_adjust, nf_ct_seqadj_init, nfct_seqadj_ext_add
from harness.mockkernel.netfilter.nf_synproxy import (NF_SYNPROXY_OPT_MSS, NF_SYNPROXY_OPT_SACK_PERM,
                                                      NF_SYNPROXY_OPT_TIMESTAMP, NF_SYNPROXY_OPT_WSCALE,
                                                      SynproxyOptions, nf_ip6_checksum_ok, nf_ip_checksum_ok,
                                                      synproxy_build_options, synproxy_parse_options)
from harness.mockkernel.target import sh
from harness.target import CommandError

CHAIN = "add table ip t; add chain ip t c { type filter hook input priority 0; }; add rule ip t c "


def _listed(kernel: Kernel, rule: str) -> tuple[str, dict]:
    sh(kernel, ["nft", CHAIN + rule])
    text = sh(kernel, ["nft", "list", "chain", "ip", "t", "c"]).splitlines()[3].strip()
    expr = json.loads(sh(kernel, ["nft", "-j", "list", "chain", "ip", "t", "c"]))["nftables"][2]["rule"]["expr"]
    return text, expr[0]


@pytest.mark.parametrize("rule, text, expr", [
    ("synproxy", "synproxy", {"synproxy": None}),
    ("synproxy mss 1460", "synproxy mss 1460 wscale 0", {"synproxy": {"mss": 1460}}),
    ("synproxy wscale 5 sack-perm", "synproxy mss 0 wscale 5 sack-perm",
     {"synproxy": {"wscale": 5, "flags": ["sack-perm"]}}),
    ("synproxy mss 70000 wscale 300", "synproxy mss 4464 wscale 44", {"synproxy": {"mss": 4464, "wscale": 44}}),
    ("synproxy mss 1 mss 2 timestamp timestamp", "synproxy mss 2 wscale 0 timestamp",
     {"synproxy": {"mss": 2, "flags": ["timestamp"]}}),
    ("synproxy sack-permitted maxseg 3", "synproxy mss 3 wscale 0 sack-perm",
     {"synproxy": {"mss": 3, "flags": ["sack-perm"]}}),
])
def test_synproxy_lists_mss_and_wscale_together_cut_to_their_netlink_widths_as_real_nft(rule, text, expr):
    assert _listed(Kernel(), rule) == (text, expr)


@pytest.mark.parametrize("hook", ["prerouting", "output", "postrouting"])
def test_synproxy_outside_input_and_forward_is_refused_by_the_kernel(hook):
    kernel = Kernel()
    with pytest.raises(CommandError, match="Could not process rule: Operation not supported"):
        sh(kernel, ["nft", f"add table ip t; add chain ip t c {{ type filter hook {hook} priority 0; }}; "
                           "add rule ip t c synproxy"])


def test_synproxy_in_a_bridge_table_is_said_not_to_be_modelled():
    with pytest.raises(CommandError, match="synproxy in bridge tables is not modelled by the mock kernel"):
        sh(Kernel(), ["nft", "add table bridge t; add chain bridge t c { type filter hook input priority 0; }; "
                             "add rule bridge t c synproxy"])


def test_the_proxys_hooks_are_held_while_a_rule_or_object_uses_them():
    """nf_synproxy_ipv4_init()/_fini(): LOCAL_IN and POST_ROUTING, just before confirm."""
    kernel = Kernel()

    def synproxy_hooks() -> list[tuple[int, str]]:
        return [(hook, entry.name) for (pf, hook), entries in kernel.nf_hooks.entries.items() for entry in entries
                if "synproxy" in entry.name]
    sh(kernel, ["nft", CHAIN + "synproxy"])
    assert sorted(synproxy_hooks()) == [(NF_INET_LOCAL_IN, "ipv4_synproxy_hook"),
                                        (NF_INET_POST_ROUTING, "ipv4_synproxy_hook")]
    sh(kernel, ["nft", "flush ruleset; add table ip6 t; add synproxy ip6 t p { mss 1460; wscale 7; }"])
    assert sorted(synproxy_hooks()) == [(NF_INET_LOCAL_IN, "ipv6_synproxy_hook"),
                                        (NF_INET_POST_ROUTING, "ipv6_synproxy_hook")]
    sh(kernel, ["nft", "flush ruleset"])
    assert synproxy_hooks() == []


def test_iptables_synproxy_saves_options_in_the_c_extensions_order_cut_to_the_infos_widths():
    kernel = Kernel()
    sh(kernel, ["iptables", "-A", "FORWARD", "-p", "tcp", "-j", "SYNPROXY", "--mss", "70000", "--ecn",
                "--wscale", "300", "--timestamp"])
    assert "-A FORWARD -p tcp -j SYNPROXY --timestamp --wscale 44 --mss 4464 --ecn" in sh(kernel, ["iptables-save"])
    assert "meta l4proto tcp counter packets 0 bytes 0 synproxy timestamp wscale 44 mss 4464 ecn" in \
        sh(kernel, ["nft", "list", "ruleset"])


@pytest.mark.parametrize("rule", [["-A", "INPUT", "-j", "SYNPROXY"], ["-A", "OUTPUT", "-p", "tcp", "-j", "SYNPROXY"],
                                  ["-A", "INPUT", "!", "-p", "tcp", "-j", "SYNPROXY"]],
                         ids=["no-tcp", "output", "not-tcp"])
def test_iptables_synproxy_needs_tcp_and_input_or_forward(rule):
    with pytest.raises(CommandError, match=r"RULE_APPEND failed \(Invalid argument\): rule in chain"):
        sh(Kernel(), ["iptables", *rule])


def test_iptables_refuses_a_jump_from_output_to_a_chain_holding_synproxy():
    """nft_target_validate(): xt_SYNPROXY's hooks are LOCAL_IN and FORWARD, checked
    for every base chain that reaches the target (EINVAL), as on the lab."""
    kernel = Kernel()
    sh(kernel, ["iptables", "-N", "x"])
    sh(kernel, ["iptables", "-A", "x", "-p", "tcp", "-j", "SYNPROXY"])
    sh(kernel, ["iptables", "-A", "FORWARD", "-j", "x"])
    with pytest.raises(CommandError, match=r"RULE_APPEND failed \(Invalid argument\): rule in chain OUTPUT"):
        sh(kernel, ["iptables", "-A", "OUTPUT", "-j", "x"])


def test_the_proxys_options_are_laid_out_as_synproxy_build_options_and_parsed_back():
    opts = SynproxyOptions(NF_SYNPROXY_OPT_MSS | NF_SYNPROXY_OPT_WSCALE | NF_SYNPROXY_OPT_SACK_PERM
                           | NF_SYNPROXY_OPT_TIMESTAMP, wscale=7, tsval=0x1234, tsecr=11, mss_option=1460)
    built = synproxy_build_options(opts)
    assert built == bytes.fromhex("020405b4" "0402080a" "00001234" "0000000b" "01030307")
    segment = bytearray(bytes(TCP(dataofs=5 + len(built) // 4)) + built)
    assert synproxy_parse_options(segment, 0, len(segment)) == opts


def test_a_window_scale_over_14_is_read_as_14_and_options_cut_short_refuse_the_segment():
    segment = bytearray(bytes(TCP(options=[("WScale", 20)])))
    assert synproxy_parse_options(segment, 0, len(segment)).wscale == 14
    assert synproxy_parse_options(segment, 0, len(segment) - 4) is None


def test_seq_adjust_shifts_seq_one_way_and_ack_and_sack_blocks_the_other_keeping_the_checksum_valid():
    ct = NfConn(Tuple(1, 2, 6, 40000, 80), Tuple(2, 1, 6, 80, 40000))
    nfct_seqadj_ext_add(ct)
    nf_ct_seqadj_init(ct, IP_CT_ESTABLISHED_REPLY, 1000)
    assert ct.status & IPS_SEQ_ADJUST
    reply = bytearray(bytes(IP(src="10.0.1.2", dst="10.0.0.2") / TCP(sport=80, dport=40000, flags="A", seq=5001,
                                                                       ack=1001)))
    nf_ct_seq_adjust(reply, 20, ct, IP_CT_ESTABLISHED_REPLY)
    assert (IP(reply)[TCP].seq, IP(reply)[TCP].ack) == (6001, 1001)
    original = bytearray(bytes(IP(src="10.0.0.2", dst="10.0.1.2") / TCP(
        sport=40000, dport=80, flags="A", seq=1001, ack=6001, options=[("NOP", None), ("NOP", None),
                                                                       ("SAck", (6101, 6201))])))
    nf_ct_seq_adjust(original, 20, ct, IP_CT_ESTABLISHED)
    adjusted = IP(original)
    assert (adjusted[TCP].seq, adjusted[TCP].ack, dict(adjusted[TCP].options)["SAck"]) == (1001, 5001, (5101, 5201))
    assert nf_ip_checksum_ok(original, 0, 20, len(original))


def test_nf_ip_checksum_passes_a_good_ipv4_segment_and_fails_a_good_ipv6_one():
    """nft_synproxy_do_eval() uses the IPv4 function for both families."""
    v4 = bytearray(bytes(IP(src="10.0.0.2", dst="10.0.1.2") / TCP(flags="S")))
    v6 = bytearray(bytes(IPv6(src="2001:db8::2", dst="2001:db8:1::2") / TCP(flags="S")))
    assert nf_ip_checksum_ok(v4, 0, 20, len(v4))
    assert nf_ip6_checksum_ok(v6, 0, 40, len(v6))
    assert not nf_ip_checksum_ok(v6, 0, 40, len(v6))
    v4[20 + 16:20 + 18] = struct.pack("!H", 0)
    assert not nf_ip_checksum_ok(v4, 0, 20, len(v4))
