"""The kernel's vocabularies, typed: DropReason mirrors enum skb_drop_reason
(include/net/dropreason-core.h) with this kernel's numbers, RouteType the RTN_*
route types of include/uapi/linux/rtnetlink.h, Stage names the journey stages,
and the mock speaks only in their members."""
from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.dropreason import DropReason, btf_enum_values
from harness.journey import Drop, Hop, Stage
from harness.mockkernel.core.skbuff import alloc_skb, kfree_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import RouteType
from harness.mockkernel.target import sh
from harness.target import PORTS

MOCKKERNEL = pathlib.Path(__file__).resolve().parents[1] / "harness" / "mockkernel"
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


# Read from include/net/dropreason-core.h (net-next, linux-netdev/testing f60c685b0dad):
# DEFINE_DROP_REASON lists SKB_NOT_DROPPED_YET = 0, SKB_CONSUMED, then NOT_SPECIFIED,
# NO_SOCKET, SOCKET_CLOSE, SOCKET_FILTER, SOCKET_RCVBUFF, UNIX_DISCONNECT,
# UNIX_SKIP_OOB, PKT_TOO_SMALL, TCP_CSUM, UDP_CSUM, NETFILTER_DROP, OTHERHOST,
# IP_CSUM, IP_INHDR, IP_RPFILTER, UNICAST_IN_L2_MULTICAST, XFRM_POLICY, IP_NOPROTO.
@pytest.mark.parametrize("name, number", [
    ("NOT_DROPPED_YET", 0), ("CONSUMED", 1), ("NOT_SPECIFIED", 2), ("NO_SOCKET", 3),
    ("SOCKET_RCVBUFF", 6), ("PKT_TOO_SMALL", 9), ("TCP_CSUM", 10), ("UDP_CSUM", 11),
    ("NETFILTER_DROP", 12), ("OTHERHOST", 13), ("IP_CSUM", 14), ("IP_INHDR", 15),
    ("IP_RPFILTER", 16), ("IP_NOPROTO", 19),
])
def test_drop_reasons_have_the_numbers_of_dropreason_core_h(name, number):
    assert DropReason[name].value == number
    assert DropReason(number) is DropReason[name]


def test_drop_reasons_are_numbered_in_declaration_order_as_a_c_enum_is():
    numbers = [reason.value for reason in DropReason if reason is not DropReason.SUBSYS_MASK]
    assert numbers == list(range(len(numbers)))
    assert DropReason.SUBSYS_MASK.value == 0xFFFF0000


def test_a_drop_reason_is_its_name_wherever_it_is_printed_or_compared():
    reason = DropReason.NETFILTER_DROP
    assert (str(reason), f"{reason}", reason) == ("NETFILTER_DROP", "NETFILTER_DROP", "NETFILTER_DROP")
    assert {"NETFILTER_DROP": 1}[reason] == 1
    assert str(Drop(reason, Stage.NF_INPUT, "nft_do_chain")) == "DROP NETFILTER_DROP at NF_INPUT in nft_do_chain"
    assert str(Hop(Stage.ROUTING, "ip_route_input_slow", "LOCAL")) == "ROUTING[ip_route_input_slow] -> LOCAL"


# Read from include/uapi/linux/rtnetlink.h: the anonymous enum RTN_UNSPEC, RTN_UNICAST,
# ... RTN_XRESOLVE; iproute2's lib/rt_names.c rtnl_rtntype_n2a() names them.
@pytest.mark.parametrize("name, number, keyword", [
    ("RTN_UNSPEC", 0, "none"), ("RTN_UNICAST", 1, "unicast"), ("RTN_LOCAL", 2, "local"),
    ("RTN_BROADCAST", 3, "broadcast"), ("RTN_ANYCAST", 4, "anycast"), ("RTN_MULTICAST", 5, "multicast"),
    ("RTN_BLACKHOLE", 6, "blackhole"), ("RTN_UNREACHABLE", 7, "unreachable"), ("RTN_PROHIBIT", 8, "prohibit"),
    ("RTN_THROW", 9, "throw"), ("RTN_NAT", 10, "nat"), ("RTN_XRESOLVE", 11, "xresolve"),
])
def test_route_types_have_the_numbers_of_rtnetlink_h_and_iproute2s_names(name, number, keyword):
    assert RouteType[name] == number
    assert RouteType(number) is RouteType[name]
    assert RouteType[name].keyword == keyword


def test_route_types_are_all_of_rtnetlink_h():
    assert len(RouteType) == 12


def _root_with_btf() -> str:
    if os.geteuid() != 0:
        pytest.skip("reading the kernel's BTF with bpftool needs root")
    bpftool = shutil.which("bpftool")
    if bpftool is None or not os.path.exists(VMLINUX_BTF):
        pytest.skip(f"needs bpftool and {VMLINUX_BTF}: apt-get install bpftool")
    return bpftool


def test_drop_reasons_are_those_of_the_running_kernels_btf():
    bpftool = _root_with_btf()
    dump = subprocess.run([bpftool, "btf", "dump", "file", VMLINUX_BTF, "format", "c"],
                          capture_output=True, text=True, check=True).stdout
    assert btf_enum_values(dump) == {reason.name: reason.value for reason in DropReason}


def _calls(name: str):
    """Every call of `name` in the mock's source, with its file and line."""
    for path in sorted(MOCKKERNEL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name:
                yield f"{path.relative_to(MOCKKERNEL)}:{node.lineno}", node


def _is_member_or_variable(node: ast.expr, enum) -> bool:
    """`Enum.MEMBER` of `enum`, or a value computed elsewhere (a name, an attribute of an object)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == enum.__name__:
        return node.attr in enum.__members__
    return not isinstance(node, ast.Constant | ast.JoinedStr)


@pytest.mark.parametrize("function, reason_at, stage_at", [("kfree_skb", 1, 2), ("Drop", 0, 1),
                                                            ("NF_DROP_REASON", 2, None)])
def test_every_drop_in_the_mock_gives_a_drop_reason_and_a_stage_member(function, reason_at, stage_at):
    calls = list(_calls(function))
    assert calls, f"no {function}() call found in {MOCKKERNEL}"
    for where, call in calls:
        assert _is_member_or_variable(call.args[reason_at], DropReason), f"{where}: the reason is not a DropReason"
        if stage_at is not None:
            assert _is_member_or_variable(call.args[stage_at], Stage), f"{where}: the stage is not a Stage"


def test_kfree_skb_refuses_a_reason_that_is_not_a_drop_reason():
    k = Kernel()
    skb = alloc_skb(bytes(20))
    skb.net = k
    with pytest.raises(TypeError, match="'NO_SOCKET'.*not a DropReason"):
        kfree_skb(skb, "NO_SOCKET", Stage.L4, "udp_rcv")


def test_journeys_and_drops_of_the_mock_hold_stage_and_drop_reason_members():
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    port = PORTS[0]
    frames = [bytes(Ether(dst=port.mac) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=9)),
              bytes(Ether(dst=port.mac) / IP(src="10.0.0.2", dst="10.0.9.9") / UDP(dport=9))]
    k.receive(port.name, frames)
    journeys = k.tracer.journeys
    hops = [hop for journey in journeys for hop in journey.hops]
    assert len(journeys) >= 2 and hops
    assert {hop.stage.__class__ for hop in hops} == {Stage}
    assert [(drop.reason.__class__, drop.stage.__class__) for drop in k.tracer.drops] == [(DropReason, Stage)] * 2
