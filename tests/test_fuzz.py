"""Hostile input: a seeded sample of the fuzzing campaign (harness/fuzz), its
watchdog, and each crash the campaign found, pinned as the kernel or the tool
behaves instead.

The sample runs every target (frames into every port of the fuzzing DUT, each
command front end, the ELF loader, the verifier and VM) on hypothesis cases
drawn from a fixed seed plus their havoc variants: a few thousand executions,
none of which may raise out of the mock or outlive its time budget. The long
campaign is `python -m harness.fuzz` (docs/fuzzing.md), never part of this run.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness import bpf_build
from harness.fuzz.campaign import Campaign
from harness.fuzz.targets import TARGETS, FramesTarget, FuzzTarget
from harness.mockkernel.bpf import BpfLoadError, BpfRuntime
from harness.mockkernel.bpf.btf import Btf, BtfError
from harness.mockkernel.bpf.maps import BPF_MAP_TYPE_ARRAY, ENOMEM, MapError
from harness.mockkernel.cmd.iptables import add_param_to_argv
from harness.mockkernel.target import MockTarget
from harness.target import CommandError, TargetError

SAMPLE = {name: 120 for name in TARGETS} | {"frames": 400, "elf": 60}
FANOUT = 9


@pytest.fixture(scope="module")
def objects():
    try:
        return {name: bpf_build.build(name) for name in ("xdp_blocklist", "tc_nat")}
    except bpf_build.ToolchainMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeded_sample_raises_nothing_out_of_the_mock_and_never_hangs(name, objects):
    campaign = Campaign()
    target = TARGETS[name](0)
    campaign.hypothesis(target, SAMPLE[name], seed=17, fanout=FANOUT)
    assert campaign.execs[name] == SAMPLE[name]
    assert not campaign.findings, campaign.report()


def test_every_frame_length_from_0_to_9216_bytes_is_taken_without_an_exception(objects):
    campaign, target = Campaign(), FramesTarget(0)
    for case in target.length_sweep():
        campaign.run_one(target, case)
    assert campaign.execs["frames"] == 9217
    assert not campaign.findings, campaign.report()


class _Looping(FuzzTarget):
    name = "looping"

    def execute(self, case) -> None:
        while case:
            pass


class _Raising(FuzzTarget):
    name = "raising"

    def execute(self, case) -> None:
        raise KeyError(case)


def test_the_watchdog_stops_an_execution_past_its_budget_and_counts_a_hang():
    campaign = Campaign(budget=0.05)
    finding = campaign.run_one(_Looping(), True)
    assert finding is not None and finding.kind == "hang"
    assert campaign.figures() == {"execs": 1, "crashes": 0, "hangs": 1}
    assert campaign.run_one(_Looping(), False) is None


def test_a_crash_is_recorded_once_per_place_with_the_first_case_that_found_it(tmp_path):
    campaign = Campaign(out=tmp_path)
    first = campaign.run_one(_Raising(), "first")
    campaign.run_one(_Raising(), "second")
    assert first.kind == "crash" and first.count == 2 and '"first"' == first.case
    assert first.where.startswith("KeyError at ")
    assert len(list(tmp_path.glob("crash-raising-*.json"))) == 1
    assert campaign.figures() == {"execs": 2, "crashes": 1, "hangs": 0}


# ---- regressions: what the campaign found, pinned as Linux behaves -----------------

def _mock_with_invalid_drop() -> MockTarget:
    target = MockTarget()
    target.sh("ip addr add 10.0.1.1/24 dev p1")
    target.sh("sysctl -q -w net.ipv6.conf.all.disable_ipv6=0")
    target.sh("ip -6 addr add 2001:db8:1::1/64 dev p1 nodad")
    target.sh("nft -f -", stdin="table inet f {\n chain input {\n type filter hook input priority 0;\n"
                                " ct state invalid counter drop\n }\n}\n")
    return target


@pytest.mark.parametrize("packet", [
    IP(src="10.0.1.2", dst="10.0.1.1", proto=6),
    IPv6(src="2001:db8:1::2", dst="2001:db8:1::1", nh=6),
], ids=["ipv4", "ipv6"])
def test_tcp_header_cut_to_its_ports_is_conntrack_invalid_not_a_read_past_the_packet(packet):
    """nf_conntrack_tcp_packet(): skb_header_pointer() of the 20-byte header fails,
    -NF_ACCEPT, the packet untracked (ct state invalid); the fuzzer's frame made
    the mock read the header out of the Ethernet padding, or past the buffer."""
    target = _mock_with_invalid_drop()
    port = target.ports[1]
    tcp10 = bytes(TCP(sport=1024, dport=22))[:10]
    target.send(port, Ether(src=port.peer_mac, dst=port.mac) / packet / tcp10)
    journey = target.journeys()[-1]
    assert any(h.stage == "NF_PREROUTING" and h.verdict == "INVALID" for h in journey.hops), journey
    assert journey.drop.reason == "NETFILTER_DROP" and journey.drop.stage == "NF_INPUT"


@pytest.mark.parametrize("text, message", [
    ("*filter\nCOMMIT\nCOMMIT\n", "iptables-restore: line 3 failed"),
    ("*nat\n:POSTROUTING\nCOMMIT\n", "iptables-restore v1.8.9 (nf_tables): iptables-restore: line 2 policy invalid"),
    ("*nat\n:\nCOMMIT\n", "iptables-restore v1.8.9 (nf_tables): iptables-restore: line 2 chain name invalid"),
])
def test_iptables_restore_refuses_a_stray_commit_and_a_chain_line_short_of_words(text, message):
    """xtables_restore_parse_line(): COMMIT outside a table is a line that failed;
    a `:` line's strtok() finding no chain name or no policy is an error."""
    with pytest.raises(CommandError) as refused:
        MockTarget().sh(["iptables-restore"], text)
    assert message in str(refused.value)


def test_iptables_restore_splits_words_as_add_param_to_argv_does_not_as_a_shell():
    """Only double quotes quote; a backslash escapes inside them only; a closing
    quote ends its word; a quote left open runs to the end of the line (a shell's
    "No closing quotation" was a ValueError out of the mock)."""
    assert add_param_to_argv('-m comment --comment "a b\\" c" -j ACCEPT') == \
        ["-m", "comment", "--comment", 'a b" c', "-j", "ACCEPT"]
    assert add_param_to_argv('-A X "open ended') == ["-A", "X", "open ended"]
    assert add_param_to_argv("-A 'x y'") == ["-A", "'x", "y'"]
    assert add_param_to_argv('-A "" x ab"cd"ef') == ["-A", "", "x", "abcd", "ef"]


def _section_header(data: bytes, index: int) -> int:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    return shoff + 64 * index


def _section_index(data: bytes, name: str) -> int:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    strtab_off, = struct.unpack_from("<Q", data, shoff + 64 * shstrndx + 0x18)
    for index in range(shnum):
        name_off, = struct.unpack_from("<I", data, shoff + 64 * index)
        if data[strtab_off + name_off:].split(b"\0", 1)[0] == name.encode():
            return index
    raise KeyError(name)


def _patch_first_relocation(data: bytes, field: int, value: bytes) -> bytes:
    """`value` at `field` of .relxdp's first Elf64_Rel (r_offset at 0, r_info's symbol at 12)."""
    at = struct.unpack_from("<Q", data, _section_header(data, _section_index(data, ".relxdp")) + 0x18)[0] + field
    return data[:at] + value + data[at + len(value):]


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d[:len(d) // 3], "BPF object format invalid"),
    (lambda d: d[:_section_header(d, _section_index(d, "xdp")) + 0x20]
     + struct.pack("<Q", 1 << 62) + d[_section_header(d, _section_index(d, "xdp")) + 0x28:],
     "failed to get section"),
    (lambda d: d[:_section_header(d, _section_index(d, "xdp")) + 0x20]
     + struct.pack("<Q", 12) + d[_section_header(d, _section_index(d, "xdp")) + 0x28:],
     "corrupted program code section size: 12"),
    (lambda d: _patch_first_relocation(d, 0, struct.pack("<Q", 0x100000)),
     "sec '.relxdp': invalid offset 0x100000 for relo #0: BPF object format invalid"),
    (lambda d: _patch_first_relocation(d, 12, struct.pack("<I", 0xFFFF)),
     "sec '.relxdp': symbol #65535 not found for relo #0: BPF object format invalid"),
    (lambda d: d[:_section_header(d, _section_index(d, "license")) + 8] + struct.pack("<Q", 0x800)
     + d[_section_header(d, _section_index(d, "license")) + 16:_section_header(d, _section_index(d, "license")) + 0x18]
     + struct.pack("<Q", 1 << 63) + d[_section_header(d, _section_index(d, "license")) + 0x20:],
     "BPF object format invalid"),
], ids=["cut short", "section past the end of the file", "code not whole instructions", "relocation past its section",
        "relocation against no symbol", "compressed section header past any offset"])
def test_malformed_elf_objects_are_refused_as_libbpf_refuses_them(objects, corrupt, message):
    """libbpf: LIBBPF_ERRNO__FORMAT ("BPF object format invalid") for what libelf
    or its own checks cannot take; pyelftools' exceptions, IndexError and
    OverflowError came out of the mock's loader before."""
    data = objects["xdp_blocklist"].read_bytes()
    with pytest.raises(BpfLoadError, match=message):
        BpfRuntime().load_object(corrupt(data))


def test_a_license_that_is_not_utf8_loads_as_libbpf_copies_bytes(objects):
    """libbpf copies the license's bytes (libbpf_strlcpy()); the kernel compares
    them with the GPL-compatible names. A byte past ASCII is no decode error."""
    data = bytearray(objects["xdp_blocklist"].read_bytes())
    data[data.index(b"GPL\0") + 2] = 0xFF
    assert BpfRuntime().load_object(bytes(data)).license == "GP\xff"


@pytest.mark.parametrize("code, message", [
    ("b70000000300000061d90000000000009500000000000000", "insn 1 (r9 = *(u32 *)(r13 +0)): R13 is invalid"),
    ("b70b000003000000b7000000000000009500000000000000", "insn 0 (r11 = 3): R11 is invalid"),
], ids=["read of r13", "write of r11"])
def test_a_register_past_r10_is_refused_by_the_verifier(code, message):
    """__check_reg_arg(): regno >= MAX_BPF_REG is "R%d is invalid" (an IndexError
    out of the mock's verifier before)."""
    with pytest.raises(BpfLoadError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
                       .replace("+", r"\+")):
        BpfRuntime().load_program(bytes.fromhex(code), "xdp", "t")


@pytest.mark.parametrize("selector", ["ip saddr", "ip6 saddr"])
def test_nft_host_name_the_idna_codec_refuses_is_could_not_resolve_hostname(selector):
    """nft resolves a host name with getaddrinfo(3), which finds no `a..b`: "Could
    not resolve hostname: Name or service not known" (the real nft 1.0.6's
    answer); Python's IDNA codec raised UnicodeError out of the mock."""
    target = MockTarget()
    target.sh("nft add table inet t")
    target.sh("nft add chain inet t c")
    with pytest.raises(CommandError, match="Could not resolve hostname: Name or service not known"):
        target.sh(f"nft add rule inet t c {selector} a..b drop")


def _btf(types: bytes, strings: bytes = b"\0x\0") -> bytes:
    """A BTF blob: btf_header (magic, version 1, hdr_len 24), the types, the strings."""
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


TYPEDEF = 8 << 24


@pytest.mark.parametrize("types, message", [
    (struct.pack("<III", 1, TYPEDEF, 5), r"type \[1\]: invalid referenced type ID 5"),
    (struct.pack("<III", 1, TYPEDEF, 1), r"type \[1\]: Loop detected"),
    (struct.pack("<III", 99, TYPEDEF, 0), "invalid string offset 99"),
], ids=["type id past the last", "typedef of itself", "name past the strings"])
def test_btf_with_a_dangling_id_a_loop_or_a_bad_name_offset_is_refused(types, message):
    """libbpf's btf_validate_id()/btf_validate_str() and the kernel's btf_resolve():
    an IndexError, an endless loop or a ValueError in the mock's BTF reader before."""
    with pytest.raises(BtfError, match=message):
        Btf(_btf(types)).resolve(1)


def test_conntrack_reads_numbers_as_atoi_does_as_conntrack_tools_1_4_7():
    """conntrack -I takes `--dport extended` as port 0, 99999 as 34463 (htons of
    the int) and `-t 1x` as one second, without an error (the real tool's listing);
    the mock raised ValueError from int()."""
    target = MockTarget()
    base = "conntrack -I -p udp -s 10.0.0.2 -d 10.0.1.2 --sport 1"
    target.sh(f"{base} --dport extended -t 30")
    target.sh(f"{base} --dport 99999 -t 30")
    target.sh(f"{base} --dport 3 -t 1x")
    listing = target.sh("conntrack -L")
    assert "sport=1 dport=0 [UNREPLIED] src=10.0.1.2 dst=10.0.0.2 sport=0 dport=1" in listing
    assert "sport=1 dport=34463 [UNREPLIED]" in listing
    assert "udp      17 1 src=10.0.0.2 dst=10.0.1.2 sport=1 dport=3 " in listing


@pytest.mark.parametrize("cmd, message", [
    (["nft", "-f", "a\0b"], "word 2 .* has a NUL byte: execve\\(2\\) cannot pass it"),
    ("ip link set dev 'p0", "cannot split .* into words: No closing quotation"),
])
def test_a_command_no_program_could_receive_is_a_target_error(cmd, message):
    """A NUL byte cannot reach a program through execve(2), and a shell would not
    run an unclosed quote: both a TargetError, not a ValueError out of the mock."""
    with pytest.raises(TargetError, match=message):
        MockTarget().sh(cmd)


def test_ethtool_stats_of_a_bridge_is_no_stats_available():
    """A bridge has no get_ethtool_stats(): ethtool -S br0 prints "no stats
    available" and exits 94 (ethtool 6.1 on this host); the mock looked the bridge
    up among the NIC ports (KeyError)."""
    target = MockTarget()
    target.sh("ip link add br0 type bridge")
    with pytest.raises(CommandError, match="no stats available") as refused:
        target.sh("ethtool -S br0")
    assert refused.value.returncode == 94


@pytest.mark.parametrize("cmd, message, status", [
    (["ip", "-6", "", "add", "dev", "p1"], 'Object "" is unknown, try "ip help".', 1),
    ("ip -6 addr add dev p1", "RTNETLINK answers: Invalid argument", 2),
    ("ip -4 addr add dev p1", "Error: ipv4: Local address is not supplied.", 2),
    ("ip addr add dev p1", "RTNETLINK answers: Operation not supported", 2),
], ids=["empty object", "ipv6 without address", "ipv4 without address", "no family, no address"])
def test_ip_address_without_an_address_fails_as_iproute2_6_1_on_linux(cmd, message, status):
    """iproute2's matches() takes no empty word; inet6_rtm_newaddr() without
    IFA_ADDRESS is EINVAL, inet_rtm_to_ifa() says "Local address is not supplied",
    an AF_UNSPEC ifaddrmsg is EOPNOTSUPP (each the real ip's answer in a
    namespace); the mock compared None with 128 (TypeError)."""
    with pytest.raises(CommandError) as refused:
        MockTarget().sh(cmd)
    assert message in str(refused.value) and refused.value.returncode == status


def test_iptables_restore_reads_a_line_up_to_a_nul_byte_as_c_strings_end():
    """xtables_restore_parse() reads lines with fgets() and parses them as C
    strings: `--dport 22\\0 -j DROP` is a rule matching port 22 with no target (the
    mock raised ValueError from getservbyname())."""
    target = MockTarget()
    target.sh(["iptables-restore", "--noflush"], "*filter\n-A INPUT -p tcp --dport 22\0 -j DROP\nCOMMIT\n")
    assert "-A INPUT -p tcp -m tcp --dport 22\n" in target.sh("iptables -S INPUT") + "\n"


def test_an_array_map_too_large_to_preallocate_is_enomem():
    """array_map_alloc() preallocates every value; bpf_map_area_alloc() failing is
    -ENOMEM. A mutated object asking for 2^32-1 entries made the mock allocate
    them (MemoryError); it refuses past the memory it gives a map."""
    with pytest.raises(MapError) as refused:
        BpfRuntime().create_map(BPF_MAP_TYPE_ARRAY, 4, 64, 0xFFFFFFFF, 0, "huge")
    assert refused.value.errno == ENOMEM


@pytest.mark.parametrize("commands, message, refused_rule", [
    (["iptables -I FORWARD 1 -j ACCEPT", "iptables -I FORWARD 1 -j FORWARD"],
     "RULE_INSERT failed (Operation not supported): rule in chain FORWARD", "-A FORWARD -j FORWARD"),
    (["iptables -N X", "iptables -A X -j FORWARD"],
     "RULE_APPEND failed (No such file or directory): rule in chain X", "-A X -j FORWARD"),
    (["iptables -N X", "iptables -A X -j X", "iptables -A INPUT -j X"],
     "RULE_APPEND failed (Too many links): rule in chain INPUT", "-A INPUT -j X"),
])
def test_iptables_jump_to_a_builtin_chain_or_into_a_loop_is_refused_as_the_kernel_refuses_it(
        commands, message, refused_rule):
    """Seen with iptables-nft 1.8.9 on this host: a jump to a base chain is
    nft_verdict_init()'s EOPNOTSUPP (ENOENT before iptables-nft made the chain), a loop
    reached from a base chain nft_chain_validate()'s ELOOP; a user chain jumping to
    itself is taken while no base chain reaches it. The mock took both and a packet
    then looped in FORWARD for ever."""
    target = MockTarget()
    for command in commands[:-1]:
        target.sh(command)
    with pytest.raises(CommandError) as refused:
        target.sh(commands[-1])
    assert message in str(refused.value)
    assert refused_rule not in target.sh("iptables -S").splitlines()


def test_a_word_where_a_verdict_map_wants_a_verdict_is_refused_as_nft_refuses_it():
    """nft 1.0.6: `elements = { 10.0.0.2 : jaccept }` is "Can't parse symbolic
    netfilter verdict expressions" (the mock raised AttributeError)."""
    with pytest.raises(CommandError) as refused:
        MockTarget().sh(["nft", "add table ip t; add map ip t m { type ipv4_addr : verdict ; "
                                "elements = { 10.0.0.2 : jaccept } }"])
    assert "Error: Can't parse symbolic netfilter verdict expressions" in str(refused.value)


def test_a_prefix_of_an_interface_name_is_named_not_modelled():
    """nft 1.0.6 takes `oifname 1.2.3.4/24` (it compares the first bytes and lists
    `oifname "1.2*"`); the mock says it does not model it (it raised TypeError)."""
    target = MockTarget()
    target.sh(["nft", "add table ip t; add chain ip t c { type filter hook output priority 0; }"])
    with pytest.raises(CommandError) as refused:
        target.sh(["nft", "add rule ip t c oifname 1.2.3.4/24 accept"])
    assert "a prefix of an interface name is not modelled by the mock kernel" in str(refused.value)


@pytest.mark.parametrize("argv", [
    "ip link set p1 xdpgeneric obj blackhole sec xdp",
    "ip link set p1 xdp obj /tmp",
])
def test_ip_link_xdp_object_that_is_no_elf_file_fails_as_iproute2_bpf_elf_ctx_init(argv):
    """iproute2 6.1 on this host: a missing path, a directory or bytes that are no
    ELF are "Cannot initialize ELF context!", status 255 (the mock raised
    FileNotFoundError)."""
    with pytest.raises(CommandError) as refused:
        MockTarget().sh(argv)
    assert "Cannot initialize ELF context!" in str(refused.value)


def test_ip_link_xdp_section_the_object_lacks_fails_as_iproute2_does(objects):
    """iproute2 6.1 on this host: `ip link set DEV xdpgeneric obj xdp_blocklist.o sec
    nosuch` is "object file doesn't contain sec nosuch" (lib/bpf_libbpf.c
    load_bpf_object()), status 255 (the mock raised KeyError)."""
    with pytest.raises(CommandError) as refused:
        MockTarget().sh(["ip", "link", "set", "p1", "xdpgeneric", "obj", str(objects["xdp_blocklist"]),
                         "sec", "nosuch"])
    assert "object file doesn't contain sec nosuch" in str(refused.value)
