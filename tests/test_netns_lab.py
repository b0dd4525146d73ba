"""The embedded netns lab against this machine's kernel: the namespaces and their
safety, configuration, frames, application sockets and kfree_skb drop reasons.

Tests of the real kernel need root (and iproute2, ethtool, bpftrace); without it
they skip saying so. Parsing and stage mapping are tested everywhere.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from harness.drivers import netns
from harness.drivers.dut import NetnsTarget
from harness.drivers.kfree_skb import (
    KfreeSkbEvent,
    KfreeSkbTracer,
    drop_reasons,
    function_name,
)
from harness.dropreason import DropReason
from harness.journey import Drop
from harness.packets import Mask
from harness.target import (
    DUT_SYSCTLS,
    PORTS,
    CommandError,
    TargetError,
    TargetUnavailable,
)

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl")),
    reason="the netns lab needs root, iproute2, ethtool and procps")
needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="drop reasons need bpftrace: apt-get install bpftrace")

P0 = PORTS[0]
H0_IP, P0_IP = "10.0.0.2", "10.0.0.1"


def _from_h0(**ip):
    return Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=P0_IP, **ip)


def _host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _namespaces() -> set[str]:
    return set(os.listdir(netns.NETNS_RUN_DIR)) if os.path.isdir(netns.NETNS_RUN_DIR) else set()


@pytest.fixture
def dut():
    target = NetnsTarget()
    yield target
    target.close()


@pytest.fixture
def addressed(dut):
    """p0 has 10.0.0.1/24 and a permanent neighbour entry for the host on t0."""
    dut.sh(f"ip addr add {P0_IP}/24 dev p0")
    dut.sh(f"ip neigh replace {H0_IP} lladdr {P0.peer_mac} dev p0 nud permanent")
    return dut


# the lab -------------------------------------------------------------------------

@needs_root
def test_lab_wires_fixed_macs_inside_its_namespaces_and_leaves_the_host_alone():
    before = _host_links()
    lab = netns.NetnsLab()
    try:
        assert re.fullmatch(rf"pj{os.getpid()}x\d+-dut", lab.dut)
        assert lab.tester == lab.dut.replace("-dut", "-tst")
        dut_links = {link["ifname"]: link for link in json.loads(lab.run(lab.dut, ["ip", "-json", "link"]))}
        tester_links = {link["ifname"]: link for link in json.loads(lab.run(lab.tester, ["ip", "-json", "link"]))}
        for port in PORTS:
            assert dut_links[port.name]["address"] == port.mac
            assert tester_links[port.peer]["address"] == port.peer_mac
            assert "UP" in dut_links[port.name]["flags"] and "UP" in tester_links[port.peer]["flags"]
        assert "UP" in dut_links["lo"]["flags"] and "UP" in tester_links["lo"]["flags"]
        assert _host_links() == before
    finally:
        lab.close()
    assert _host_links() == before


@needs_root
def test_dut_gets_the_known_sysctls_and_the_tester_has_no_ipv6():
    lab = netns.NetnsLab()
    try:
        keys = ["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.ping_group_range"]
        shown = lab.run(lab.dut, ["sysctl", "-n", *keys]).splitlines()
        assert shown == [DUT_SYSCTLS[key] for key in keys]
        assert lab.sysctls[lab.dut] == DUT_SYSCTLS
        assert lab.run(lab.tester, ["sysctl", "-n", "net.ipv6.conf.t0.disable_ipv6"]).strip() == "1"
        assert lab.run(lab.dut, ["sysctl", "-n", "net.ipv6.conf.p0.disable_ipv6"]).strip() == "1"
    finally:
        lab.close()


@needs_root
def test_dut_ports_checksum_in_software_so_the_tester_sees_whole_checksums():
    lab = netns.NetnsLab()
    try:
        features = lab.run(lab.dut, ["ethtool", "-k", "p0"])
        assert "tx-checksumming: off" in features
    finally:
        lab.close()


@needs_root
def test_close_deletes_both_namespaces_and_can_be_called_again():
    lab = netns.NetnsLab()
    assert {lab.dut, lab.tester} <= _namespaces()
    lab.close()
    lab.close()
    assert not {lab.dut, lab.tester} & _namespaces()
    with pytest.raises(TargetError, match="closed"):
        lab.run(lab.dut, ["ip", "link"])


def test_the_host_namespace_is_refused():
    with pytest.raises(TargetError, match="host's"):
        netns.refuse_host_netns(os.stat("/proc/self/ns/net").st_ino, "enter it")
    with pytest.raises(TargetError, match="host's"):
        netns.refuse_host_netns(netns.PROC_NET_INIT_INO, "enter it")


@needs_root
def test_entering_the_host_namespace_is_refused_and_the_thread_stays_home():
    home = os.stat("/proc/thread-self/ns/net").st_ino
    with pytest.raises(TargetError, match="host's"), netns.inside_netns("/proc/self/ns/net"):
        pass
    assert os.stat("/proc/thread-self/ns/net").st_ino == home


def test_a_missing_tool_names_the_package_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetUnavailable, match="`bpftrace` is not installed: `apt-get install bpftrace`"):
        netns.require_tool("bpftrace")


@needs_root
def test_stale_namespaces_of_dead_processes_are_removed():
    """In a mount namespace of its own with an empty /run/netns: the namespaces
    it makes are seen by no other worker, whose first lab would remove the stale
    one first (and they vanish with it)."""
    script = textwrap.dedent("""
        import json, os, subprocess
        from harness.drivers import netns
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale, alive = f"pj{dead.pid}x0-dut", f"pj{os.getpid()}x999-dut"
        for name in (stale, alive):
            subprocess.run(["ip", "netns", "add", name], check=True)
        print(json.dumps({"stale": stale, "alive": alive, "removed": netns.remove_stale_labs(),
                          "left": sorted(os.listdir(netns.NETNS_RUN_DIR))}))
    """)
    os.makedirs(netns.NETNS_RUN_DIR, exist_ok=True)
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f'mount -t tmpfs pj-test {netns.NETNS_RUN_DIR} && exec "$0" -', sys.executable],
                         input=script, capture_output=True, text=True, check=False,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert (seen["removed"], seen["left"]) == ([seen["stale"]], [seen["alive"]])


@needs_root
@pytest.mark.parametrize("as_timeout", [False, True], ids=["process", "process-then-group"])
def test_sigterm_tears_down_the_labs_of_the_killed_process(as_timeout):
    """`timeout` signals the process, then its whole group: the handler runs while a
    second SIGTERM arrives and the teardown's own `ip` would be killed."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from harness.drivers.netns import NetnsLab
        lab = NetnsLab()
        print(lab.dut, lab.tester, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    names = child.stdout.readline().split()
    assert set(names) <= _namespaces()
    child.send_signal(signal.SIGTERM)
    if as_timeout:
        os.killpg(child.pid, signal.SIGTERM)
    assert child.wait(timeout=10) == -signal.SIGTERM
    assert not set(names) & _namespaces()


# configuration ------------------------------------------------------------------

@needs_root
def test_sh_runs_operator_commands_inside_the_dut(dut):
    dut.sh("ip addr add 10.0.1.1/24 dev p0")
    assert "10.0.1.1/24" in dut.sh(["ip", "-o", "addr", "show", "dev", "p0"])
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    assert "10.0.1.1" not in host.stdout


@needs_root
def test_sh_refuses_programs_that_are_not_configuration_commands(dut):
    with pytest.raises(CommandError, match="`head` is not a configuration command"):
        dut.sh("head /etc/hostname")


@needs_root
def test_sh_cat_reads_only_the_kernels_proc_files(dut):
    with pytest.raises(CommandError, match=r"`cat` reads only /proc/net/\* and /proc/sys/\* on a target, "
                                           r"not '/etc/hostname'"):
        dut.sh("cat /etc/hostname")
    with pytest.raises(CommandError, match="not '/proc/net/../../etc/hostname'"):
        dut.sh("cat /proc/net/../../etc/hostname")
    assert dut.sh("cat /proc/sys/net/ipv4/ip_forward") == "0\n"


@needs_root
def test_a_failing_command_raises_with_its_stderr(dut):
    with pytest.raises(CommandError, match="nosuch") as err:
        dut.sh("ip link set nosuch up")
    assert err.value.argv == ["ip", "link", "set", "nosuch", "up"]


# frames, sockets, drops ---------------------------------------------------------

@needs_root
def test_tester_ports_stay_silent_on_their_own(dut):
    dut.expect_nothing()


@needs_root
@needs_bpftrace
def test_udp_to_a_closed_port_is_answered_port_unreachable_and_dropped_no_socket(addressed):
    sent = _from_h0(id=7) / UDP(sport=1234, dport=9999) / b"anyone?"
    addressed.send("p0", sent)
    reply = Ether(src=P0.mac, dst=P0.peer_mac) / IP(src=P0_IP, dst=H0_IP, tos=0xC0, flags=0) / \
        ICMP(type=3, code=3) / bytes(sent[IP])
    mask = Mask(reply).ignore(IP, "id", "ICMP errors are sent without DF: hashed IP ID") \
        .ignore(IP, "chksum", "covers the IP ID")
    addressed.expect("p0", mask)
    assert addressed.drops() == [Drop("NO_SOCKET", "L4", "__udp4_lib_rcv",
                                      f"{H0_IP} > {P0_IP} udp id=7 ttl=64 len=35")]
    addressed.expect_nothing()


@needs_root
@needs_bpftrace
def test_drops_are_complete_when_asked_and_the_sentinel_never_shows(addressed):
    assert addressed.drops() == []
    addressed.send("p0", [_from_h0(id=i) / UDP(dport=9) for i in range(5)])
    assert [drop.packet.split()[4] for drop in addressed.drops()] == [f"id={i}" for i in range(5)]
    assert [journey.drop.reason for journey in addressed.journeys()] == ["NO_SOCKET"] * 5
    addressed.reset()
    assert addressed.drops() == []


@needs_root
@needs_bpftrace
def test_a_udp_socket_receives_and_counts_the_datagrams_its_full_buffer_dropped(addressed):
    sock = addressed.socket("udp", (P0_IP, 6000), rcvbuf=2048)
    addressed.send("p0", [_from_h0(id=i) / UDP(sport=100, dport=6000) / (b"." * 1000) for i in range(20)])
    received = sock.recv_all()
    drops = addressed.drops()
    assert received and len(received) + len(drops) == 20
    assert {(d.reason, d.stage, d.location) for d in drops} == {("SOCKET_RCVBUFF", "SOCKET", "udp_queue_rcv_one_skb")}
    assert sock.drops() == len(drops)
    addressed.send("p0", _from_h0() / UDP(sport=100, dport=6000) / b"hello")
    assert sock.recv() == (b"hello", (H0_IP, 100))
    with pytest.raises(TargetError, match="nothing received"):
        sock.recv()


@needs_root
def test_a_ping_socket_sends_its_echo_id(addressed):
    sock = addressed.socket("icmp", (P0_IP, 0x77))
    sock.sendto(bytes(ICMP(type=8, id=0, seq=1) / b"ping"), (H0_IP, 0))
    frame = Ether(addressed.frame_left("p0", "the echo request"))
    assert (frame[ICMP].type, frame[ICMP].id, frame[ICMP].seq) == (8, 0x77, 1)
    assert sock.drops() == 0


@needs_root
@needs_bpftrace
@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft: apt-get install nftables")
def test_a_netfilter_drop_names_the_hook_it_happened_in(addressed):
    addressed.sh("nft -f -", stdin=textwrap.dedent("""
        table ip t {
            chain c_in { type filter hook input priority 0; udp dport 7 drop; }
        }
    """))
    addressed.send("p0", _from_h0() / UDP(dport=7))
    assert [(d.reason, d.stage) for d in addressed.drops()] == [("NETFILTER_DROP", "NF_INPUT")]


@needs_root
@needs_bpftrace
def test_every_fragment_of_an_expired_datagram_is_reported(addressed):
    addressed.sh("sysctl -w net.ipv4.ipfrag_time=1")
    udp = bytes(UDP(sport=1, dport=2) / (b"x" * 2392))  # 2400 bytes: the middle 800 never come
    first = _from_h0(id=0x2222, proto=17, flags="MF", frag=0) / udp[:800]
    last = _from_h0(id=0x2222, proto=17, frag=200) / udp[1600:]
    addressed.send("p0", [first, last])
    addressed.wait(1.5)
    drops = addressed.drops()
    for _ in range(10):  # a loaded machine runs the 1 s expiry timer late
        if len(drops) >= 2:
            break
        addressed.wait(0.5)
        drops = addressed.drops()
    assert [(d.reason, d.location) for d in drops] == [
        ("FRAG_REASM_TIMEOUT", "ip_expire"), ("FRAG_REASM_TIMEOUT", "inet_frag_rbtree_purge")]
    assert {d.stage for d in drops} == {"IP_DEFRAG"}


@needs_root
def test_a_frame_longer_than_the_dut_port_mtu_is_refused_with_the_reason(dut):
    with pytest.raises(TargetError, match="p0 cannot receive a 2014-byte frame: its MTU is 1500"):
        dut.send("p0", _from_h0() / UDP() / (b"x" * 1972))


@needs_root
def test_without_bpftrace_the_target_lacks_drop_reasons(monkeypatch):
    def missing(*tracer_filter):
        raise TargetUnavailable("`bpftrace` is not installed: `apt-get install bpftrace`")
    monkeypatch.setattr(KfreeSkbTracer, "shared", missing)
    target = NetnsTarget()
    try:
        assert "drop_reasons" not in target.capabilities
        assert {"kernel", "frames", "sockets"} <= target.capabilities
        with pytest.raises(TargetError, match="apt-get install bpftrace"):
            target.drops()
    finally:
        target.close()


# parsing the tracer -------------------------------------------------------------

def test_reasons_come_from_the_tracepoint_format_by_name():
    fmt = 'print fmt: "reason: %s", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 7, "NO_SOCKET" })'
    reasons = drop_reasons(fmt)
    # by name: another kernel's numbers map to the same members
    assert reasons == {2: DropReason.NOT_SPECIFIED, 7: DropReason.NO_SOCKET}
    assert reasons[7] is DropReason.NO_SOCKET
    with pytest.raises(TargetError, match="__print_symbolic"):
        drop_reasons("print fmt: nothing")


def test_a_kernel_with_a_drop_reason_the_enum_lacks_asks_for_it_to_be_regenerated():
    fmt = 'print fmt: "reason: %s", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NEW_ONE" })'
    with pytest.raises(TargetError, match=r"lacks \(NEW_ONE\).*scripts/gen_dropreason.py"):
        drop_reasons(fmt)


def test_compiler_clone_suffixes_are_not_part_of_the_function_name():
    assert function_name("__netif_receive_skb_core.constprop.0") == "__netif_receive_skb_core"
    assert function_name("ip_rcv_core") == "ip_rcv_core"


def test_an_event_line_decodes_network_order_fields():
    # 10.0.0.2 > 10.0.0.1 as a little-endian u32 load; id 7, tot_len 35, frag_off DF
    event = KfreeSkbEvent.parse("drop 4026532246 3 __udp4_lib_rcv 2048 35 33554442 16777226 17 1792 64 8960 64")
    assert (event.saddr, event.daddr, event.id, event.tot_len, event.ttl) == ("10.0.0.2", "10.0.0.1", 7, 35, 64)
    assert event.summary() == "10.0.0.2 > 10.0.0.1 udp id=7 ttl=64 len=35"
    assert event.stage("NO_SOCKET") == "L4"


@pytest.mark.parametrize(("caller", "stage"), [
    ("ip_rcv", "NF_PREROUTING"), ("ip_local_deliver", "NF_INPUT"), ("ip_forward", "NF_FORWARD"),
    ("__ip_local_out", "NF_OUTPUT"), ("ip_output", "NF_POSTROUTING"), ("br_handle_frame", "NF_PREROUTING"),
    ("__br_forward", "NF_FORWARD"), ("br_nf_forward_ip", "NF_FORWARD"), ("br_nf_hook_thresh", "NF"),
])
def test_a_netfilter_drop_takes_its_stage_from_the_caller_of_nf_hook_slow(caller, stage):
    stack = ("sk_skb_reason_drop", "nft_do_chain", "nft_do_chain_ipv4", "nf_hook_slow", caller)
    event = KfreeSkbEvent.parse("drop 1 12 nft_do_chain 2048 28 0 0 17 0 64 0 0", stack)
    assert event.stage("NETFILTER_DROP") == stage


def test_a_bridge_chain_drop_of_the_bridges_own_frame_is_at_nf_output():
    """__br_forward() runs NF_BR_LOCAL_OUT for what br_dev_xmit() sends, NF_BR_FORWARD otherwise."""
    stack = ("sk_skb_reason_drop", "nft_do_chain", "nft_do_chain_bridge", "nf_hook_slow", "__br_forward",
             "br_dev_xmit", "dev_hard_start_xmit")
    event = KfreeSkbEvent.parse("drop 1 12 nft_do_chain 2048 28 0 0 17 0 64 0 0", stack)
    assert event.stage("NETFILTER_DROP") == "NF_OUTPUT"


def test_reasons_that_name_their_stage_win_over_the_location():
    event = KfreeSkbEvent.parse("drop 1 73 __netif_receive_skb_core.constprop.0 2048 28 0 0 17 0 64 0 0")
    assert event.stage("TC_INGRESS") == "TC_INGRESS"
    assert event.location == "__netif_receive_skb_core"
    assert event.stage("NOT_SPECIFIED") == "UNKNOWN"


@needs_root
def test_a_sysctl_write_the_kernel_refuses_is_an_error_although_procps_exits_0(dut):
    """nf_conntrack_max is 0444 outside init_net; procps 4.0.2 prints the refusal
    and exits 0, and the harness must not take that for success."""
    dut.sh("nft add table ip t")
    dut.sh("nft add chain ip t c { type filter hook prerouting priority 0 \\; }")
    dut.sh("nft add rule ip t c ct state new counter")  # conntrack on: its sysctls exist
    with pytest.raises(CommandError) as refused:
        dut.sh("sysctl -w net.netfilter.nf_conntrack_max=5")
    assert 'sysctl: setting key "net.netfilter.nf_conntrack_max": Invalid argument' in str(refused.value)
    assert dut.sh("sysctl -w net.ipv4.ip_forward=1") == "net.ipv4.ip_forward = 1\n"


# TC hops from counters (xdpstats.py) ----------------------------------------------

from harness.drivers import xdpstats  # noqa: E402  (this file grows by appending)
from harness.journey import Hop, Journey  # noqa: E402

def _counted(runs: dict[tuple[str, str], int] = (), drops: dict[str, int] = (), sent: dict[str, int] = (),
             in_receives: int = 0) -> xdpstats.Snapshot:
    """A snapshot of every port: one clsact program per (port, direction) in `runs`."""
    runs, drops, sent = dict(runs), dict(drops), dict(sent)
    ports = {}
    for port in PORTS:
        state = xdpstats.PortCounters(clsact_drops=drops.get(port.name, 0), sent=sent.get(port.name, 0))
        for i, direction in enumerate(xdpstats.DIRECTIONS):
            if (port.name, direction) in runs:
                state.tc_runs[direction] = {10 * port.index + i: runs[port.name, direction]}
        ports[port.name] = state
    return xdpstats.Snapshot(ports, in_receives)


def _tc_hops_of_one_frame(frame, before: xdpstats.Snapshot, after: xdpstats.Snapshot) -> xdpstats.FrameHops:
    send = xdpstats.Send(P0, [bytes(frame)], before)
    (hops,) = xdpstats.frame_hops(send, after)
    return hops


def _verdicts(hops) -> list[tuple[str, str, str]]:
    return [(h.stage, h.where, h.verdict) for h in hops]


FORWARDED = Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.1.2", id=9) / UDP(sport=1, dport=7)
EGRESS_P1 = {("p1", "egress"): 0}


@pytest.mark.parametrize(("drops", "sent", "expected"), [
    ({"p1": 1}, {}, [("TC_EGRESS", "p1", "SHOT")]),
    ({}, {"p1": 1}, [("TC_EGRESS", "p1", "OK"), ("NIC_TX", "p1", "XMIT")]),
    ({}, {"p2": 1}, [("TC_EGRESS", "p1", "REDIRECT"), ("NIC_TX", "p2", "XMIT")]),
    ({}, {}, [("TC_EGRESS", "p1", "")]),
], ids=["drop-counter-shot", "own-port-sent-ok", "other-port-sent-redirect", "nothing-stolen-or-trap"])
def test_tc_egress_verdicts_come_from_the_clsact_drops_and_the_ports_transmit_counters(drops, sent, expected):
    hops = _tc_hops_of_one_frame(FORWARDED, _counted(EGRESS_P1), _counted({("p1", "egress"): 1}, drops, sent))
    assert (hops.first, _verdicts(hops.egress), hops.answers) == ([], expected, [])


def test_a_da_program_passing_a_frame_is_ok_whatever_code_made_it_unspec():
    hops = _tc_hops_of_one_frame(FORWARDED, _counted(EGRESS_P1), _counted({("p1", "egress"): 1}, sent={"p1": 1}))
    assert "UNSPEC" in hops.egress[0].summary


def test_tc_egress_on_the_port_the_frame_came_in_on_is_its_answers_and_owns_the_shared_drop_counter():
    """p0 has programs both ways: the echo request passed ingress (its reply crossed
    egress), so the one drop on p0's clsact is the reply's."""
    request = _from_h0(id=10) / ICMP(type=8)
    both = {("p0", "ingress"): 0, ("p0", "egress"): 0}
    hops = _tc_hops_of_one_frame(request, _counted(both, in_receives=5),
                                 _counted({("p0", "ingress"): 1, ("p0", "egress"): 1}, {"p0": 1}, in_receives=6))
    assert _verdicts(hops.first) == [("TC_INGRESS", "p0", "")]
    assert hops.egress == []
    assert [_verdicts(answer) for answer in hops.answers] == [[("TC_EGRESS", "p0", "SHOT")]]


def test_several_frames_on_a_port_with_programs_both_ways_get_no_verdict_from_the_shared_drop_counter():
    both = {("p0", "ingress"): 0, ("p0", "egress"): 0}
    send = xdpstats.Send(P0, [bytes(_from_h0(id=i) / ICMP(type=8)) for i in (11, 12)], _counted(both))
    after = _counted({("p0", "ingress"): 2, ("p0", "egress"): 2}, {"p0": 1}, {"p0": 1})
    for hops in xdpstats.frame_hops(send, after):
        assert [h.verdict for h in hops.first + hops.answers[0]] == ["", ""]
        assert "share the counter" in hops.first[0].summary


def test_tc_ingress_redirect_is_an_ipv4_frame_ip_never_counted_that_another_port_took():
    before = _counted({("p0", "ingress"): 0, ("p1", "egress"): 0}, in_receives=3)
    after = _counted({("p0", "ingress"): 1, ("p1", "egress"): 1}, sent={"p1": 1}, in_receives=3)
    hops = _tc_hops_of_one_frame(FORWARDED, before, after)
    assert _verdicts(hops.first) == [("TC_INGRESS", "p0", "REDIRECT")]
    assert _verdicts(hops.egress) == [("TC_EGRESS", "p1", "OK"), ("NIC_TX", "p1", "XMIT")]
    reached_ip = _counted({("p0", "ingress"): 1, ("p1", "egress"): 1}, sent={"p1": 1}, in_receives=4)
    assert _verdicts(_tc_hops_of_one_frame(FORWARDED, before, reached_ip).first) == [("TC_INGRESS", "p0", "")]


def test_an_egress_redirect_to_a_port_with_its_own_egress_program_gives_both_hops_in_order():
    before = _counted({("p1", "egress"): 0, ("p2", "egress"): 0})
    hops = _tc_hops_of_one_frame(FORWARDED, before, _counted({("p1", "egress"): 1, ("p2", "egress"): 1},
                                                             sent={"p2": 1}))
    assert _verdicts(hops.egress) == [("TC_EGRESS", "p1", "REDIRECT"), ("TC_EGRESS", "p2", "OK"),
                                      ("NIC_TX", "p2", "XMIT")]


def test_tc_egress_goes_after_postrouting_and_its_nat_and_takes_the_drop_nftrace_could_not_attach():
    """Masqueraded, then shot at egress: kfree_skb saw the translated source, so
    nftrace left the drop on its own; the frame's journey takes it."""
    frame = bytes(FORWARDED)
    traced = Journey(packet=xdpstats.frame_summary(frame), hops=[
        Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT"),
        Hop("NF_POSTROUTING", "nf_nat_packet", "SNAT")])
    dropped = Journey(packet="10.0.1.1 > 10.0.1.2 udp id=9 ttl=63 len=28",
                      drop=Drop("TC_EGRESS", "TC_EGRESS", "__dev_queue_xmit", "10.0.1.1 > 10.0.1.2 udp id=9 ttl=63 len=28"))
    found = xdpstats.FrameHops([Hop("TC_INGRESS", "p0")], [Hop("TC_EGRESS", "p1", "SHOT")])
    assert xdpstats.merge([traced, dropped], [(frame, found)]) == [traced]
    assert traced.stages == ["TC_INGRESS", "NF_POSTROUTING", "NF_POSTROUTING", "TC_EGRESS"]
    assert traced.drop == dropped.drop


def test_an_answers_tc_egress_goes_into_its_traced_journey_or_a_child_of_its_own():
    frame = bytes(_from_h0(id=13) / ICMP(type=8))
    answer = [Hop("TC_EGRESS", "p0", "OK"), Hop("NIC_TX", "p0", "XMIT")]
    reply = Journey(packet="10.0.0.1 > 10.0.0.2 icmp id=99 ttl=64 len=28", hops=[Hop("NF_POSTROUTING", "ip t post")])
    request = Journey(packet=xdpstats.frame_summary(frame), children=[reply])
    xdpstats.merge([request], [(frame, xdpstats.FrameHops(answers=[answer]))])
    assert reply.stages == ["NF_POSTROUTING", "TC_EGRESS", "NIC_TX"]
    (untraced,) = xdpstats.merge([], [(frame, xdpstats.FrameHops(answers=[answer]))])
    assert [child.stages for child in untraced.children] == [["TC_EGRESS", "NIC_TX"]]


def test_transmit_counts_and_ip_in_receives_are_read_from_proc_net():
    dev = ("Inter-|   Receive                                                |  Transmit\n"
           " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
           "carrier compressed\n"
           "    p1:     100       2    0    0    0     0          0         0      300       5    0    1    0     0 "
           "      0          0\n")
    assert xdpstats.sent_by_port(dev) == {"p1": 6}
    snmp = "Ip: Forwarding DefaultTTL InReceives InHdrErrors\nIp: 1 64 42 0\nIcmp: InMsgs\nIcmp: 3\n"
    assert xdpstats.ip_in_receives(snmp) == 42


@needs_root
def test_the_observer_reads_egress_runs_drops_and_transmits_of_the_lab(addressed, bpf_objects):
    program = bpf_objects["tc_drop_udp"]
    addressed.sh("tc qdisc add dev p0 clsact")
    addressed.sh(f"tc filter add dev p0 egress bpf da obj {program} sec tc")
    observer = xdpstats.BpfRunObserver(addressed.lab)
    try:
        before = observer.snapshot()
        addressed.send(P0, _from_h0(id=14) / UDP(sport=1, dport=7))  # closed port: the ICMP error crosses egress
        addressed.collect(P0)
        delta = xdpstats.PortDelta.between(before.ports["p0"], observer.snapshot().ports["p0"])
    finally:
        observer.close()
    assert (delta.ingress_runs, delta.egress_runs, delta.clsact_drops, delta.sent) == (0, 1, 0, 1)


# failed TC redirects -----------------------------------------------------------------

@pytest.mark.parametrize(("location", "tc_at_ingress", "stage"), [
    ("skb_do_redirect", "1", "TC_INGRESS"), ("skb_do_redirect", "0", "TC_EGRESS"),
    ("__bpf_redirect", "0", "TC_EGRESS"), ("skb_do_redirect", "", "UNKNOWN"),
], ids=["no-device-at-ingress", "no-device-at-egress", "recursion-limit-at-egress", "kernel-without-the-bit"])
def test_a_failed_redirect_takes_its_tc_direction_from_skb_tc_at_ingress(location, tc_at_ingress, stage):
    """skb_do_redirect() and __bpf_redirect run from both TC hooks: the location
    cannot say which, the skb's tc_at_ingress bit (the line's last field) does."""
    event = KfreeSkbEvent.parse(f"drop 1 2 {location} 2048 30 0 0 17 1536 64 7680 0 {tc_at_ingress}".strip())
    assert event.stage("NOT_SPECIFIED") == stage


def test_the_tc_bit_comes_before_a_netfilter_drops_stack_marker():
    event = KfreeSkbEvent.parse("drop 1 12 nft_do_chain 2048 28 0 0 17 0 64 0 0 0 stack\n",
                                ("nft_do_chain", "nf_hook_slow", "ip_forward"))
    assert (event.tc_at_ingress, event.stage("NETFILTER_DROP")) == (0, "NF_FORWARD")


def test_a_tc_hop_without_a_verdict_is_the_redirect_whose_drop_the_frame_joins():
    """The counters say only that nothing took the frame; a drop in skb_do_redirect
    at that hop's stage says its program redirected, to no device."""
    frame = bytes(FORWARDED)
    line = "10.0.0.2 > 10.0.1.2 udp id=9 ttl=63 len=28"
    dropped = Journey(packet=line, drop=Drop("NOT_SPECIFIED", "TC_EGRESS", "skb_do_redirect", line))
    found = xdpstats.FrameHops(egress=[Hop("TC_EGRESS", "p1", "", "nothing took it")])
    assert xdpstats.merge([dropped], [(frame, found)]) == [dropped]
    assert _verdicts(dropped.hops) == [("TC_EGRESS", "p1", "REDIRECT")]
    assert "skb_do_redirect" in dropped.hops[0].summary


# reset() on both targets -------------------------------------------------------------

from harness.mockkernel.target import MockTarget  # noqa: E402


@pytest.fixture(params=["mock", pytest.param("dut", marks=[needs_root, needs_bpftrace])])
def each_target(request):
    target = MockTarget() if request.param == "mock" else NetnsTarget()
    yield target
    target.close()


def test_reset_forgets_frames_journeys_and_drops_and_keeps_the_dut_state_on_both_targets(each_target):
    """A UDP datagram to a closed port: a NO_SOCKET drop and an ICMP error out of
    p0. reset() forgets both and the traced journey, not the error left uncollected
    on the wire; the address, neighbour, ruleset and its counter stay."""
    target = each_target
    target.sh(f"ip addr add {P0_IP}/24 dev p0")
    target.sh(f"ip neigh replace {H0_IP} lladdr {P0.peer_mac} dev p0 nud permanent")
    target.sh("nft -f -", stdin="table ip t {\n chain in {\n  type filter hook input priority 0;\n"
                                "  udp dport 9 counter\n }\n}\n")
    target.send("p0", _from_h0(id=1) / UDP(sport=1, dport=9))
    assert [journey.drop.reason for journey in target.journeys()] == ["NO_SOCKET"]
    target.reset()
    assert (target.journeys(), target.drops()) == ([], [])
    target.expect_nothing()
    assert target.frame_log[-1][0] == "left"  # the error is in the test's pcap still
    target.send("p0", _from_h0(id=2) / UDP(sport=1, dport=9))
    assert [(drop.reason, " id=2 " in drop.packet) for drop in target.drops()] == [("NO_SOCKET", True)]
    assert [counter.packets for counter in target.counters()] == [2]


# the tracer's lost events and the host's conntrack table: without root --------------

import threading  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from harness.drivers import ct_table  # noqa: E402


def _tracer_reading(lines: list[str]) -> KfreeSkbTracer:
    """A tracer whose bpftrace printed `lines`, read to the end."""
    tracer = object.__new__(KfreeSkbTracer)
    tracer.lock, tracer._ready = threading.Condition(), threading.Event()
    tracer.exited, tracer._unreadable, tracer.lost_events = False, "", 0
    tracer._watched, tracer._expired_datagrams = {}, {}
    tracer._process = SimpleNamespace(stdout=iter(lines), kill=lambda: None, wait=lambda: 0)
    tracer._read()
    return tracer


def test_events_bpftrace_reports_lost_are_counted_so_drops_can_say_they_are_incomplete():
    tracer = _tracer_reading(["ready\n", "Lost 3 events\n", "Lost 2 events\n"])
    assert (tracer.lost_events, tracer._unreadable) == (5, "")


class _FakeLab:
    dut = "pj1x0-dut"

    def __init__(self, stat: str, sysctls: dict[str, int]) -> None:
        self.stat, self.sysctls = stat, sysctls

    def read_proc_net(self, name: str, filename: str) -> str:
        assert (name, filename) == (self.dut, "stat/nf_conntrack")
        return self.stat

    def run(self, name: str, argv: list[str]) -> str:
        assert argv[:2] == ["sysctl", "-n"]
        return f"{self.sysctls[argv[2]]}\n"


STAT = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop "
        "icmp_error  expect_new expect_create expect_delete search_restart\n"
        "00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000a "
        "00000000 00000000  00000000 00000000 00000000 00000000\n"
        "00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 "
        "00000000 00000000  00000000 00000000 00000000 00000000\n")


def test_a_conntrack_stat_is_summed_over_the_cpus_from_hex():
    assert ct_table.conntrack_stat(_FakeLab(STAT, {}), "drop") == 11


@pytest.mark.parametrize("count, new, locked", [(0, 94, False), (0, 95, True), (90, 5, True), (99, 0, True)])
def test_a_lab_takes_the_host_lock_when_its_entries_reach_the_gc_s_early_drop_threshold(
        monkeypatch, tmp_path, count, new, locked):
    monkeypatch.setattr(ct_table, "LOCK_PATH", str(tmp_path / "lock"))
    table = ct_table.HostConntrackTable(_FakeLab(STAT, {"net.netfilter.nf_conntrack_max": 100,
                                                        "net.netfilter.nf_conntrack_count": count}))
    table.claim_for(new)
    assert (table._lock is not None) == locked


# settling: what left is known without waiting out the negative timeout --------------

def _in_a_thread_on_one_cpu(work):
    """`work()` in a thread of its own pinned to one CPU (the test's own thread stays
    free to run anywhere); what it returned."""
    result = []

    def pinned():
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        result.append(work())

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join()
    return result[0]


@needs_root
def test_a_thread_on_one_cpu_collects_the_dut_s_answer_by_markers_through_the_tester_s_lo(addressed):
    """drivers/dut.py, Settling: sent and collected on one CPU, the answer is in when the
    markers are back, so the negative timeout (an hour here) is not waited out."""
    addressed.negative_timeout = 3600.0

    def send_and_collect():
        addressed.send(P0, _from_h0(id=21) / UDP(sport=1, dport=7))  # closed port: a port unreachable
        settles = addressed._settles_by_markers()
        return settles, addressed.collect_all() if settles else None

    settles, left = _in_a_thread_on_one_cpu(send_and_collect)
    assert settles
    assert [(frame[ICMP].type, frame[ICMP].code) for frame in map(Ether, left["p0"])] == [(3, 3)]
    assert left["p1"] == left["p2"] == []


@needs_root
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="this process runs on one CPU only")
def test_frames_sent_by_a_thread_that_may_run_anywhere_or_a_dut_application_are_waited_for(addressed):
    addressed.send(P0, _from_h0(id=22) / UDP(sport=1, dport=7))  # from this thread, on any CPU
    assert not _in_a_thread_on_one_cpu(addressed._settles_by_markers)
    fresh = NetnsTarget()
    try:
        fresh.socket("udp", ("127.0.0.1", 9))  # an application sends from any thread, its timers fire anywhere
        assert not _in_a_thread_on_one_cpu(fresh._settles_by_markers)
    finally:
        fresh.close()


def test_generic_xdp_gets_no_verdict_from_veth_counters_that_only_count_the_native_path():
    """do_xdp_generic() counts nothing in veth_get_ethtool_stats(): a generic
    program's XDP_TX (seen as PASS before: runs without counters) has no verdict."""
    before, after = _counted(), _counted()
    for snapshot, runs in ((before, 0), (after, 1)):
        snapshot.ports["p0"].prog_id, snapshot.ports["p0"].run_cnt, snapshot.ports["p0"].generic = 7, runs, True
    send = xdpstats.Send(P0, [bytes(FORWARDED)], before)
    (hops,) = xdpstats.frame_hops(send, after)
    assert _verdicts(hops.first) == [("XDP", "p0", "")]
    assert "generic" in hops.first[0].summary
    for snapshot in (before, after):
        snapshot.ports["p0"].generic = False
    (native,) = xdpstats.frame_hops(xdpstats.Send(P0, [bytes(FORWARDED)], before), after)
    assert _verdicts(native.first) == [("XDP", "p0", "PASS")]  # native: no counter rose but the run


def test_a_drop_the_tracer_names_no_packet_for_is_the_frame_s_where_a_generic_xdp_run_ended():
    """A version-5 frame dropped by a generic XDP program: the drop tracer names no
    packet ("ipv4"), and the run has no verdict; the drop at XDP is still the
    frame's (merge()), not a packet of its own next to it."""
    from harness.journey import Drop
    frame = bytes(Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.0.1", id=3, version=5) / UDP())
    drop = Journey("ipv4", [], Drop("NOT_SPECIFIED", "XDP", "do_xdp_generic"))
    other = Journey("ipv4", [], Drop("IP_INHDR", "IP_RCV", "ip_rcv_core"))
    unsure = xdpstats.FrameHops([Hop("XDP", "p0", "", "generic XDP")])
    journeys = xdpstats.merge([other, drop], [(frame, unsure)])
    assert len(journeys) == 2 and journeys[1].hops == unsure.first and journeys[1].drop.stage == "XDP"
    assert journeys[0].hops == []  # a drop at another stage stays apart


def test_a_tc_run_without_verdict_takes_no_drop_naming_no_packet_that_another_frame_s_shot_owns():
    """Two frames, one send each: a TCP fragment TC let through (no verdict: OK or
    a pass the counters cannot tell) and a malformed datagram TC shot; the drop
    the tracer names no packet for ("ipv4") is the second's (seed 21, scenario 88)."""
    from harness.journey import Drop
    passed = bytes(Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.0.1", id=1, frag=3, proto=6))
    shot = bytes(Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.0.1", id=2, version=5) / UDP())
    drop = Journey("ipv4", [], Drop("TC_INGRESS", "TC_INGRESS", "__netif_receive_skb_core"))
    journeys = xdpstats.merge([drop], [(passed, xdpstats.FrameHops([Hop("TC_INGRESS", "p0", "")])),
                                       (shot, xdpstats.FrameHops([Hop("TC_INGRESS", "p0", "SHOT")]))])
    assert [(j.hops[0].verdict, j.drop is not None) for j in journeys] == [("SHOT", True), ("", False)]
