"""Classic BPF on the mock (core/filter.py, after net/core/filter.c) and
-m bpf (netfilter/xt_bpf.py, libxt_bpf.c): what bpf_check_classic() refuses,
what a program returns (worked out by hand from the classic semantics), and
libxt_bpf's parse with the messages iptables-nft 1.8.9 printed for the same
input in a network namespace of this machine."""
from __future__ import annotations

import random

import pytest

from harness.mockkernel.core.filter import ClassicPacket, SockFilter, bpf_check_classic, bpf_prog_run
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.netfilter.xt_bpf import bpf_parse_string
from harness.mockkernel.target import MockTarget
from harness.target import CommandError

PREFIX = "iptables v1.8.9 (nf_tables): "
EINVAL = -22
# an IPv4/UDP packet: 20-byte header, TTL 63, 10.0.0.2 -> 10.0.1.2, ports 1000 -> 53
PACKET = bytes.fromhex("4500001c00000000" "3f110000" "0a000002" "0a000102" "03e80035" "00080000")


def program(text: str) -> list[SockFilter]:
    return bpf_parse_string(text)


def run(text: str, mark: int = 0) -> int:
    skb = alloc_skb(b"\0" * 14 + PACKET)
    skb.mac_header, skb.network_header = skb.data, skb.data + 14
    skb.protocol, skb.mark = 0x0800, mark
    return bpf_prog_run(program(text), ClassicPacket(skb, skb.network_header, skb.tail, random.Random(0)))


@pytest.mark.parametrize("text, why", [
    ("1,7 0 0 0", "the last instruction is not a return"),
    ("2,52 0 0 0,22 0 0 0", "a division by the constant 0"),
    ("2,100 0 0 32,22 0 0 0", "a shift by 32"),
    ("2,96 0 0 0,22 0 0 0", "a scratch word read that no path stored"),
    ("4,21 0 1 0,2 0 0 3,96 0 0 3,22 0 0 0", "a scratch word stored on one path only"),
    ("2,21 1 0 0,6 0 0 0", "a conditional jump past the end"),
    ("2,5 0 0 1,6 0 0 0", "ja past the end"),
    ("2,32 0 0 4294963264,6 0 0 1", "an unknown ancillary load (SKF_AD_OFF + 64)"),
    ("2,180 0 0 5,22 0 0 0", "an opcode not in the table (0xb4)"),
])
def test_bpf_check_classic_refuses(text, why):
    assert bpf_check_classic(program(text)) == EINVAL, why


def test_a_scratch_word_stored_before_the_branches_may_be_read_after_them():
    assert bpf_check_classic(program("5,2 0 0 3,21 0 1 0,6 0 0 0,96 0 0 3,22 0 0 0")) == 0


@pytest.mark.parametrize("text, returns", [
    ("4,48 0 0 9,21 0 1 17,6 0 0 1,6 0 0 0", 1),  # ldb [9] (UDP); jeq #17
    ("2,40 0 0 22,22 0 0 0", 53),  # ldh [22]: the destination port; ret a
    ("3,177 0 0 0,72 0 0 0,22 0 0 0", 1000),  # ldxb 4*([0]&0xf) = 20; ldh [x+0]; ret a
    ("2,32 0 0 25,6 0 0 1", 0),  # ld [25] runs past the 28 bytes: the program returns 0
    ("2,128 0 0 0,22 0 0 0", 28),  # ld #len
    ("3,1 0 0 0,60 0 0 0,6 0 0 1", 0),  # ldx #0; div x: returns 0
    ("3,0 0 0 7,148 0 0 4,22 0 0 0", 3),  # ld #7; mod #4
    ("3,0 0 0 1,132 0 0 0,22 0 0 0", 0xFFFFFFFF),  # ld #1; neg
    ("6,0 0 0 5,2 0 0 0,0 0 0 9,97 0 0 0,135 0 0 0,22 0 0 0", 5),  # ld #5; st M[0]; ld #9; ldx M[0]; txa
    ("2,48 0 0 4293918728,22 0 0 0", 63),  # ldb [SKF_NET_OFF + 8]: the TTL
    ("2,48 0 0 4292870156,22 0 0 0", 0),  # ldb [SKF_LL_OFF + 12]: the MAC header's zero bytes here
    ("2,40 0 0 4294963200,22 0 0 0", 0x0800),  # ldh [SKF_AD_OFF + SKF_AD_PROTOCOL]
    ("4,0 0 0 6,1 0 0 3,32 0 0 4294963240,22 0 0 0", 5),  # a ^= x by SKF_AD_ALU_XOR_X
    ("4,0 0 0 4294967295,4 0 0 2,37 0 1 0,6 0 0 1", 1),  # 0xffffffff + 2 wraps to 1; jgt #0
])
def test_a_classic_program_returns(text, returns):
    assert run(text) == returns


def test_the_mark_ancillary_load_reads_skb_mark():
    assert run("2,32 0 0 4294963220,22 0 0 0", mark=0x1234) == 0x1234


@pytest.mark.parametrize("text, message", [
    ("1,6 0 0 1,6 0 0 0", "bpf: real program length exceeds the encoded length parameter"),
    ("2,6 0 0 1", "bpf: parsed program length is less than the encoded length parameter"),
    ("1,6,0,0,1", "bpf: error at instr 0"),
    ("0,", "bpf: illegal zero length program"),
    ("1", "bpf: error parsing program length"),
    ("1 ,6 0 0 1", "bpf: error parsing program length"),
    ("65,6 0 0 1", "bpf: number of instructions exceeds maximum"),
])
def test_a_malformed_bytecode_is_refused_with_libxt_bpfs_message(text, message):
    with pytest.raises(CommandError) as err:
        MockTarget().sh(["iptables", "-A", "INPUT", "-m", "bpf", "--bytecode", text])
    assert str(err.value).split("failed: ", 1)[-1].splitlines()[0] == PREFIX + message


def test_a_program_the_kernel_refuses_fails_the_append_with_einval():
    with pytest.raises(CommandError) as err:
        MockTarget().sh(["iptables", "-A", "INPUT", "-m", "bpf", "--bytecode", "2,100 0 0 32,22 0 0 0"])
    assert PREFIX + " RULE_APPEND failed (Invalid argument): rule in chain INPUT" in str(err.value)


def test_numbers_are_cut_to_their_c_types_as_sscanf_stores_them():
    """%hu of 65537 is 1, %hhu of 300 is 44, %u of -1 is 4294967295, and %u
    stops at the x of 0x10."""
    target = MockTarget()
    for text in ("65537,6 0 0 1", "1,6 0 0 -1", "1,6 300 0 0x10"):
        target.sh(["iptables", "-A", "INPUT", "-m", "bpf", "--bytecode", text])
    saved = [line for line in target.sh("iptables-save").splitlines() if line.startswith("-A")]
    assert saved == ['-A INPUT -m bpf --bytecode "1,6 0 0 1"', '-A INPUT -m bpf --bytecode "1,6 0 0 4294967295"',
                     '-A INPUT -m bpf --bytecode "1,6 44 0 0"']


def test_the_listing_ends_with_the_nul_byte_bpf_print_code_prints():
    target = MockTarget()
    target.sh(["iptables", "-A", "INPUT", "-m", "bpf", "--bytecode", "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0"])
    row = target.sh("iptables -L INPUT -n").splitlines()[2]
    assert row.endswith("0.0.0.0/0           match bpf 48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0\0")


def test_an_ancillary_load_the_mock_leaves_out_is_named():
    with pytest.raises(CommandError) as err:
        MockTarget().sh(["iptables", "-A", "INPUT", "-m", "bpf", "--bytecode", "2,32 0 0 4294963232,6 0 0 1"])
    assert "SKF_AD_RXHASH is not modelled by the mock kernel" in str(err.value)
