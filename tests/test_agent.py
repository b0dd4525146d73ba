"""The DUT agent (drivers/agent.py): its bootstrap run by Debian's /usr/bin/python3 with
no site package (`-I`), its code fed on stdin, inside a netns lab's DUT namespace, serving the DutSide a lab DUT
serves, compared with the NetnsTarget's own DutSide on the same test: journeys, drops,
counters, conntrack, sockets, eBPF events, load runs and errors come back equal.
Then what only a DUT shares its namespace with: drops, traces and connections of
other interfaces stay out. The protocol's safety runs without root.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import socket
import subprocess
import time
import zipfile
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness import bpfmaps
from harness.drivers import agent
from harness.drivers.agent import AGENT_SESSION_PREFIX, Remote, agent_argv, agent_code, decode, encode
from harness.drivers.dut import NetnsTarget
from harness.drivers.dutstate import DutState
from harness.drivers.dutside import LoadRunObservation
from harness.drivers.load_counters import Snapshot
from harness.drivers.netns import NetnsLab, inside_netns, process_exits
from harness.drivers.remote import SshHost
from harness.drivers.sshd import SSHD
from harness.dropreason import DropReason
from harness.journey import CtEntry, Drop, Hop, Journey, Stage, render_all
from harness.packets import to_bytes
from harness.target import PORTS, CommandError, TargetError, TargetUnavailable, TcpInfo, TcpState
from harness.traffic import Mode, Profile, Rate, Stream
from sshlab import DUT_ADDRESS, LAB_PORTS, ssh_dut

SYSTEM_PYTHON = "/usr/bin/python3"
needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "nft", "bpftrace")),
    reason="the agent's lab tests need root, iproute2, ethtool, procps, nftables and bpftrace")
needs_system_python = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK),
                                         reason=f"the agent is checked with Debian's {SYSTEM_PYTHON}")

P0, P1 = PORTS[0], PORTS[1]
H0_IP, P0_IP, H1_IP, P1_IP = "10.0.0.2", "10.0.0.1", "10.0.1.2", "10.0.1.1"


def _from_h0(**ip):
    return Ether(src=P0.peer_mac, dst=P0.mac) / IP(**{"src": H0_IP, "dst": P0_IP, **ip})


def _configure(target) -> None:
    """p0 and p1 addressed with their hosts as permanent neighbours, forwarding on, an
    input chain counting UDP to port 9 and a forward chain dropping UDP to port 99."""
    for ip, host_ip, port in ((P0_IP, H0_IP, P0), (P1_IP, H1_IP, P1)):
        target.sh(f"ip addr add {ip}/24 dev {port.name}")
        target.sh(f"ip neigh replace {host_ip} lladdr {port.peer_mac} dev {port.name} nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    target.sh("nft -f -", stdin="table ip t {\n chain in {\n  type filter hook input priority 0;\n"
                                "  udp dport 9 counter\n }\n chain routed {\n  type filter hook forward priority 0;\n"
                                "  ct state new counter\n  udp dport 99 counter drop\n }\n}\n")


@pytest.fixture(scope="module")
def agent_zip(tmp_path_factory):
    """The agent's code as a zip file, as its bootstrap writes it on the DUT."""
    path = tmp_path_factory.mktemp("agent") / "harness.zip"
    path.write_bytes(agent_code()[4:])
    return path


@pytest.fixture
def pair():
    """The same lab twice: the NetnsTarget's own DutSide, and a DUT agent's."""
    targets = []
    try:
        targets.append(NetnsTarget())
        targets.append(NetnsTarget(agent_python=SYSTEM_PYTHON))
        yield targets
    finally:
        for target in targets:
            target.close()


def _icmp_ids_hidden(journeys: list[Journey]) -> str:
    """The journeys as the failure output shows them, less the IP IDs of the ICMP
    errors the DUT sent (each namespace draws its own)."""
    return re.sub(r"icmp id=\d+", "icmp id=*", render_all(journeys))


# the zipapp --------------------------------------------------------------------------

def test_the_agents_code_is_the_harness_package_zipped_in_memory_with_its_length_ahead():
    code = agent_code()
    assert agent_code() is code  # built once per process
    assert int.from_bytes(code[:4], "big") == len(code) - 4
    with zipfile.ZipFile(io.BytesIO(code[4:])) as archive:
        names = archive.namelist()
    assert "harness/drivers/agent.py" in names and "harness/drivers/dutside.py" in names


@needs_system_python
def test_the_agent_imports_the_standard_library_only(agent_zip):
    """Debian's python3 without site packages imports everything the agent serves
    with, and none of it pulls in scapy."""
    probe = ("import sys; sys.argv = ['agent']; import harness.drivers.agent, harness.drivers.herelab; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scapy', 'yaml', 'pydantic', 'zmq')))")
    result = subprocess.run([SYSTEM_PYTHON, "-I", "-c", f"import sys; sys.path.insert(0, {str(agent_zip)!r}); {probe}"],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


# the protocol ---------------------------------------------------------------------------

def test_the_harness_data_types_cross_the_channel_unchanged():
    drop = Drop(DropReason.NETFILTER_DROP, Stage.NF_FORWARD, "nft_do_chain", "10.0.0.2 > 10.0.1.2 udp")
    message = [Journey("10.0.0.2 > 10.0.1.2 udp", [Hop(Stage.NF_FORWARD, "ip t fwd", "DROP")], drop),
               CtEntry("udp", "", ("10.0.0.2", "10.0.1.2", 1, 99), ("10.0.1.2", "10.0.0.2", 99, 1),
                       frozenset({"assured"}), 7, 30),
               LoadRunObservation(Snapshot({("DUT", "p0", "rx_dropped"): 1}, {}, {(0, "dropped"): 2}, {}),
                                  Snapshot({}, {}, {}, {}), {(DropReason.QDISC_DROP, Stage.QDISC, "x"): 3}),
               Remote(4, "socket", {}), PORTS[2], {1, 2}, bytearray(b"\x00"), b"frame", None,
               TcpInfo(TcpState.TCP_SYN_SENT, *range(18))]
    data = encode(message)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    decoded = decode(data[4:])
    assert decoded == message
    assert (type(decoded[0].drop.reason), type(decoded[0].hops[0].stage)) == (DropReason, Stage)
    assert type(decoded[-1].state) is TcpState


def test_anything_but_the_harness_data_types_is_refused_when_unpickled():
    class Payload:
        def __reduce__(self):
            return os.system, ("true",)

    for forbidden in (Payload(), TargetError("x"), time.monotonic):
        with pytest.raises(pickle.UnpicklingError, match="not one of the harness's data types"):
            decode(pickle.dumps(forbidden))
    failure, kind, details = decode(agent.Agent("/nonexistent").answer(pickle.dumps(Payload()))[4:])
    assert (failure, kind) == (agent.FAILED, "AgentFault")
    assert "posix.system, which is not one of the harness's data types" in details


def test_a_remote_failure_is_raised_as_the_exception_the_dut_side_raised():
    error = CommandError(["nft", "add", "rule"], "Error: syntax error", 1)
    agent_reply = agent.Agent("/nonexistent").answer(encode((0, agent.OPEN, ("not a flag", "extra", "one too many")))[4:])
    assert decode(agent_reply[4:])[:2] == (agent.FAILED, "AgentFault")
    rebuilt = agent._remote_exception("CommandError", (error.argv, str(error), error.returncode), "dut")
    assert (type(rebuilt), str(rebuilt), rebuilt.argv, rebuilt.returncode) == \
        (CommandError, str(error), error.argv, error.returncode)
    assert type(agent._remote_exception("OSError", (1, "Operation not permitted"), "dut")) is PermissionError
    assert agent.Agent("/nonexistent").answer(encode((7, "drops", ()))[4:]) == encode(
        (agent.FAILED, "TargetError", "the DUT agent holds no object 7 (closed, or never opened)"))


# the agent against the netns target's own DutSide ---------------------------------------

@needs_lab
@needs_system_python
def test_forwarding_drops_journeys_counters_and_conntrack_equal_the_netns_targets(pair):
    """A datagram forwarded p0 -> p1, one dropped by the forward chain, one to a
    closed local port: the agent reports what the NetnsTarget does."""
    seen = []
    for target in pair:
        _configure(target)
        target.send("p0", _from_h0(dst=H1_IP, id=1) / UDP(sport=5, dport=98))
        target.frame_left("p1", "the forwarded datagram")
        target.send("p0", _from_h0(dst=H1_IP, id=2) / UDP(sport=5, dport=99))
        target.send("p0", _from_h0(id=3) / UDP(sport=5, dport=9))
        target.collect("p0")  # the port unreachable
        # in the order of the namespace's hash; seconds left by a clock's ticks
        conntrack = sorted(entry._replace(timeout=0) for entry in target.conntrack())
        seen.append((target.journeys(), target.drops(), target.counters(), conntrack))
    assert _icmp_ids_hidden(seen[1][0]) == _icmp_ids_hidden(seen[0][0])
    assert seen[1][1:] == seen[0][1:]
    journeys, drops, counters, conntrack = seen[1]
    assert [(drop.reason, drop.stage) for drop in drops] == [
        (DropReason.NETFILTER_DROP, Stage.NF_FORWARD), (DropReason.NO_SOCKET, Stage.L4)]
    assert [journey.drop for journey in journeys] == [None, *drops]
    assert [(counter.rule, counter.packets) for counter in counters] == [
        ("udp dport 9 counter", 1), ("ct state new counter", 2), ("udp dport 99 counter drop", 1)]
    # the dropped datagram's entry was never confirmed
    assert [(entry.original[3], entry.proto) for entry in conntrack] == [(9, "udp"), (98, "udp")]


@needs_lab
@needs_system_python
def test_sockets_reset_conntrack_create_and_errors_equal_the_netns_targets(pair):
    seen = []
    for target in pair:
        _configure(target)
        target.sh("nft add table ip o")
        target.sh(["nft", "add", "chain", "ip", "o", "out", "{ type filter hook output priority 0; }"])
        target.sh(["nft", "add", "rule", "ip", "o", "out", "udp", "dport", "77", "drop"])
        sock = target.socket("udp", (P0_IP, 9), rcvbuf=2048)
        target.send("p0", [to_bytes(_from_h0(id=i) / UDP(sport=1000 + i, dport=9) / (b"x" * 700)) for i in range(8)])
        first = sock.recv()
        rest = sock.recv_all()
        with pytest.raises(PermissionError) as refused:
            sock.sendto(b"out", (H0_IP, 77))
        dropped = sock.drops()
        target.reset()
        after_reset = (target.journeys(), target.drops())
        entry = CtEntry("udp", "", ("10.0.0.9", "10.0.1.9", 4000, 53), ("10.0.1.9", "10.0.0.9", 53, 4000),
                        frozenset({"seen-reply"}), 5, 100)
        target.conntrack_create([entry])
        created = [(e.original, e.status, e.mark) for e in target.conntrack() if e.original == entry.original]
        errors = []
        for bad in (lambda: target.sh("nft add rule ip t nowhere accept"),
                    lambda: target.socket("sctp", (P0_IP, 9)),
                    lambda: target.sh("ip link set dev p0 mtu 99999"),
                    lambda: target.send("p0", _from_h0() / UDP() / (b"x" * 1972))):
            with pytest.raises(TargetError) as error:
                bad()
            errors.append((type(error.value), str(error.value)))
        seen.append((first, len(rest), refused.value.errno, dropped, after_reset, created, errors))
    assert seen[1] == seen[0]
    first, queued, errno, dropped, after_reset, created, errors = seen[1]
    assert first == (b"x" * 700, (H0_IP, 1000)) and queued + 1 + dropped == 8 and dropped > 0
    assert after_reset == ([], [])
    assert created == [(("10.0.0.9", "10.0.1.9", 4000, 53), frozenset({"confirmed", "seen-reply"}), 5)]
    assert [kind for kind, _ in errors] == [CommandError, TargetError, CommandError, TargetError]
    assert "socket proto 'sctp' is not supported" in errors[1][1]
    assert errors[3][1].startswith("p0 cannot receive a 2014-byte frame: its MTU is 1500")


def _tcp_conversation(target) -> list:
    """A listener, a connection the tester opens with data, the DUT's answer, a connect
    the tester refuses, and the errors on the way: what each call returned or raised."""
    seen = []
    listener = target.socket("tcp", (P0_IP, 8080), rcvbuf=4096)
    listener.listen(2)
    with pytest.raises(BlockingIOError) as nothing_to_accept:
        listener.accept()
    seen.append(("accept", nothing_to_accept.value.errno, listener.info().state, listener.info().send_q))
    target.send("p0", _from_h0() / TCP(sport=40000, dport=8080, flags="S", seq=100, window=8192))
    synack = Ether(target.next_frame("p0", target.now() + 5)[0])[TCP]
    target.send("p0", _from_h0() / TCP(sport=40000, dport=8080, flags="PA", seq=101, ack=synack.seq + 1,
                                       window=8192) / b"ping")
    conn, peer = listener.accept()
    seen.append(("accepted", peer, conn.wait("readable", 5), conn.recv(100), conn.send(b"pong")))
    answer = [Ether(target.next_frame("p0", target.now() + 5)[0])[TCP] for _ in range(2)]  # quick ACK, then data
    seen.append(("answer", [(str(segment.flags), bytes(segment.payload)) for segment in answer],
                 conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)))
    outgoing = target.socket("tcp")
    with pytest.raises(BlockingIOError) as in_progress:
        outgoing.connect((H0_IP, 9))
    syn = Ether(target.next_frame("p0", target.now() + 5)[0])[TCP]
    target.send("p0", _from_h0() / TCP(sport=9, dport=syn.sport, flags="RA", seq=0, ack=syn.seq + 1))
    with pytest.raises(ConnectionRefusedError) as refused:
        outgoing.wait("connected", 5)
    seen.append(("connect", in_progress.value.errno, refused.value.errno, outgoing.info().state))
    conn.close()
    conn.close()
    return seen


@needs_lab
@needs_system_python
def test_tcp_sockets_through_the_agent_equal_the_netns_targets(pair):
    seen = []
    for target in pair:
        _configure(target)
        seen.append(_tcp_conversation(target))
    assert seen[1] == seen[0]
    assert seen[0] == [("accept", 11, TcpState.TCP_LISTEN, 2), ("accepted", (H0_IP, 40000), True, b"ping", 4),
                       ("answer", [("A", b""), ("PA", b"pong")], 536), ("connect", 115, 111, TcpState.TCP_CLOSE)]


def _time_wait_on_the_dut(target) -> None:
    """h0 connects to a DUT listener, the DUT closes first, h0 answers its FIN: the
    DUT's end of the connection waits in TIME_WAIT."""
    listener = target.socket("tcp", (P0_IP, 8080))
    listener.listen(1)
    target.send("p0", _from_h0() / TCP(sport=40000, dport=8080, flags="S", seq=100, window=8192))
    synack = Ether(target.next_frame("p0", target.now() + 5)[0])[TCP]
    target.send("p0", _from_h0() / TCP(sport=40000, dport=8080, flags="A", seq=101, ack=synack.seq + 1, window=8192))
    conn, _ = listener.accept()
    conn.close()
    fin = Ether(target.next_frame("p0", target.now() + 5)[0])[TCP]
    target.send("p0", _from_h0() / TCP(sport=40000, dport=8080, flags="FA", seq=101, ack=fin.seq + 1, window=8192))
    target.next_frame("p0", target.now() + 5)  # the DUT's last ACK


@needs_lab
@needs_system_python
def test_a_dut_namespace_that_outlives_the_test_keeps_none_of_its_tcp_connections_not_even_time_wait():
    """The agent in the DUT's own namespace (HereLab, a lab DUT without isolation):
    closing the test's DutSide destroys what the test's sockets left in the kernel."""
    target = NetnsTarget(agent_python=SYSTEM_PYTHON)
    try:
        _configure(target)
        _time_wait_on_the_dut(target)
        lab = target.lab
        assert "TIME-WAIT" in lab.run(lab.dut, ["ss", "-tan"])
        target.side.close()
        assert lab.run(lab.dut, ["ss", "-tanH"]) == ""
    finally:
        target.close()


@needs_lab
@needs_system_python
def test_xdp_hops_and_bpf_events_equal_the_netns_targets(pair, bpf_objects):
    seen = []
    for target in pair:
        _configure(target)
        target.sh(f"ip link set dev p0 xdp obj {bpf_objects['xdp_events']} sec xdp")
        ringbuf = target.bpf_events(bpfmaps.map_of(target, "p0", "events").id)
        perf = target.bpf_events(bpfmaps.map_of(target, "p0", "perf_events").id)
        sock = target.socket("udp", (P0_IP, 9))
        frame = to_bytes(_from_h0(id=5, ttl=9) / UDP(sport=3, dport=9) / b"hello")
        target.send("p0", frame)
        sock.recv()
        seen.append((ringbuf.kind, ringbuf.read(), perf.kind, [s[:26] for s in perf.read()], perf.lost,
                     [[hop for hop in journey.hops if hop.stage == Stage.XDP] for journey in target.journeys()]))
    assert seen[1] == seen[0]
    ring_kind, records, perf_kind, samples, lost, xdp_hops = seen[1]
    assert (ring_kind, perf_kind, lost) == ("ringbuf", "perf_event_array", 0)
    assert records == [bytes.fromhex("0a000002 0a000001") + (len(frame)).to_bytes(2, "little") + bytes([17, 9])]
    assert samples == [records[0] + frame[:14]]
    assert [hop.verdict for hops in xdp_hops for hop in hops] == ["PASS"]


@needs_lab
@needs_system_python
def test_a_load_run_counts_the_same_drops_through_the_agent(pair):
    seen = []
    for target in pair:
        _configure(target)
        frame = to_bytes(_from_h0(dst=H1_IP) / UDP(sport=5, dport=99) / (b"z" * 18))
        result = target.traffic(Profile((Stream("p0", frame, Rate(1000), Mode.SINGLE_BURST, count=200),)))
        seen.append([(loss.stage, loss.reason, loss.where, loss.packets) for loss in result.losses])
        target.send("p0", _from_h0(id=6) / UDP(sport=5, dport=9))
        seen.append([drop.reason for drop in target.drops()])  # traced again after the run
        assert target.side.qdisc_backlog() == 0 and " p1:" in target.side.proc_net_dev()
    assert seen[2:] == seen[:2]
    assert seen[0] == [(Stage.NF_FORWARD, DropReason.NETFILTER_DROP, "nft_do_chain", 200)]
    assert seen[1] == [DropReason.NO_SOCKET]


# what a DUT shares its namespace with ----------------------------------------------------

@needs_lab
@needs_system_python
def test_drops_traces_and_connections_of_other_interfaces_are_not_the_tests(pair):
    """A management veth pair inside the DUT namespace (m0 10.9.0.1 <-> m1 10.9.0.2):
    a datagram from m1 to a closed port of 10.9.0.1 and a conntrack entry of
    10.9.0.1 are the netns target's (its namespace is the test's alone) and none of
    the agent's, which traces and reports drops of the ports and lo only. Both
    report a local output drop (no device yet) and a local datagram to a closed
    port, which crosses lo."""
    seen = []
    for target in pair:
        _configure(target)
        lab = target.lab
        lab.run(lab.dut, ["ip", "link", "add", "m0", "address", "02:00:00:00:09:01", "type", "veth",
                          "peer", "name", "m1", "address", "02:00:00:00:09:02"])
        for command in ("ip link set m0 up", "ip link set m1 up", "ip addr add 10.9.0.1/24 dev m0",
                        "ip neigh replace 10.9.0.2 lladdr 02:00:00:00:09:02 dev m0 nud permanent"):
            lab.run(lab.dut, command.split())
        target.sh(["nft", "add", "chain", "ip", "t", "out", "{ type filter hook output priority 0; }"])
        target.sh(["nft", "add", "rule", "ip", "t", "out", "udp", "dport", "77", "drop"])
        target.reset()
        m1 = lab.socket(lab.dut, socket.AF_PACKET, socket.SOCK_RAW)
        m1.bind(("m1", 0))
        m1.send(to_bytes(Ether(src="02:00:00:00:09:02", dst="02:00:00:00:09:01") /
                         IP(src="10.9.0.2", dst="10.9.0.1", id=4) / UDP(sport=6, dport=7)))
        sock = target.socket("udp", (P0_IP, 9))
        with pytest.raises(PermissionError):
            sock.sendto(b"out", (H0_IP, 77))
        entry = CtEntry("udp", "", ("10.9.0.2", "10.9.0.1", 4000, 22), ("10.9.0.1", "10.9.0.2", 22, 4000),
                        frozenset(), 0, 100)
        target.conntrack_create([entry])
        sock.sendto(b"to lo", (P1_IP, 5))
        seen.append(([(drop.reason, drop.stage, _addresses(drop.packet)) for drop in target.drops()],
                     [entry.original for entry in target.conntrack()],
                     [journey.packet for journey in target.journeys()]))
    netns_drops, netns_conntrack, netns_journeys = seen[0]
    agent_drops, agent_conntrack, agent_journeys = seen[1]
    output_drop = (DropReason.NETFILTER_DROP, Stage.NF_OUTPUT, f"{P0_IP} > {H0_IP}")
    lo_drop = (DropReason.NO_SOCKET, Stage.L4, f"{P0_IP} > {P1_IP}")
    # m0's port unreachable comes back in on m1, from an address of the namespace
    assert netns_drops == [(DropReason.NO_SOCKET, Stage.L4, "10.9.0.2 > 10.9.0.1"),
                           (DropReason.IP_LOCAL_SOURCE, Stage.ROUTING, "10.9.0.1 > 10.9.0.2"), output_drop, lo_drop]
    assert agent_drops == [output_drop, lo_drop]
    assert ("10.9.0.2", "10.9.0.1", 4000, 22) in netns_conntrack
    assert ("10.9.0.2", "10.9.0.1", 4000, 22) not in agent_conntrack
    assert [_addresses(packet) for packet in agent_journeys] == [f"{P0_IP} > {H0_IP}", f"{P0_IP} > {P1_IP}"]
    assert "10.9.0.2 > 10.9.0.1" in [_addresses(packet) for packet in netns_journeys]


def _addresses(packet: str) -> str:
    """`SRC > DST` of a journey's or drop's packet line."""
    return " ".join(packet.split()[:3])


@needs_lab
@needs_system_python
def test_the_agent_exits_when_its_stdin_closes_and_takes_its_observers_with_it():
    """The SSH connection drops: no close request, just the end of stdin. The agent
    deletes the pj_trace tables, closes its sockets and its bpftrace follows it out."""
    target = NetnsTarget()
    lab = target.lab
    try:
        process, channel = _agent_in(lab)
        dut = agent.RemoteDutSide(channel, where=lab.dut)
        argv = ["nft", "add", "table", "ip", "x"]
        dut.after_command(argv, lab.run(lab.dut, dut.before_command(argv)))
        dut.socket("udp", ("0.0.0.0", 4321), None, None, 1.0)
        tracers = _bpftraces_of(process.pid)
        assert "pj_trace" in lab.run(lab.dut, ["nft", "list", "tables"]) and tracers
        assert ":10E1 " in lab.read_proc_net(lab.dut, "udp")
        process.stdin.close()
        assert process.wait(30) == 0
        assert lab.run(lab.dut, ["nft", "list", "tables"]) == "table ip x\n"
        assert ":10E1 " not in lab.read_proc_net(lab.dut, "udp")
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in tracers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in tracers)
    finally:
        target.close()


def _agent_in(lab: NetnsLab, **env: str) -> tuple[subprocess.Popen, agent.PipeChannel]:
    """A DUT agent started in the lab's DUT namespace as a lab starts it (`env`: its
    environment's additions), its code sent."""
    process = lab.popen(lab.dut, agent_argv(SYSTEM_PYTHON), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        env={**os.environ, **env})
    channel = agent.PipeChannel(process.stdin, process.stdout)
    channel.write(agent_code())
    return process, channel


def _reaper_of(pid: int) -> int:
    """The pid of process `pid`'s reaper (reaper.py)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().split(b"\0")[-3:-1] == [b"harness.drivers.reaper", str(pid).encode()]:
                    return int(entry)
        except FileNotFoundError:
            continue
    raise AssertionError(f"process {pid} has no reaper")


@needs_lab
@needs_system_python
@pytest.mark.parametrize("end", ["stdin closed", "killed"])
def test_the_agent_leaves_nothing_in_the_duts_temporary_directory(tmp_path, end):
    """Its code and the files the harness put on the DUT live in the agent's session
    directory, which goes once it has exited, SIGKILL included (its reaper)."""
    dut_tmp = tmp_path / "dut-tmp"
    dut_tmp.mkdir()
    target = NetnsTarget()
    try:
        process, channel = _agent_in(target.lab, TMPDIR=str(dut_tmp))
        dut = agent.RemoteDutSide(channel, where=target.lab.dut)
        put = dut.put_file("prog-0123.o", b"\x7fELF")
        [session] = dut_tmp.iterdir()
        assert session.name.startswith(AGENT_SESSION_PREFIX)
        assert sorted(path.name for path in session.iterdir()) == ["harness.zip", "prog-0123.o"]
        assert put == str(session / "prog-0123.o") and (session / "prog-0123.o").read_bytes() == b"\x7fELF"
        reaper = _reaper_of(process.pid)
        if end == "killed":
            process.kill()
        else:
            process.stdin.close()
        process.wait(30)
        assert process_exits(reaper, 30)
        assert list(dut_tmp.iterdir()) == []
    finally:
        target.close()


@needs_system_python
@pytest.mark.parametrize("sent, says", [
    (b"\x00\x00\x01\x00PK", "the packet-journey DUT agent's code did not arrive whole on its stdin"),
    (len(b"not a zip").to_bytes(4, "big") + b"not a zip", "ModuleNotFoundError: No module named 'harness'"),
])
def test_an_agent_whose_code_is_cut_short_or_broken_says_so_and_leaves_nothing(tmp_path, sent, says):
    result = subprocess.run(agent_argv(SYSTEM_PYTHON), input=sent, capture_output=True, check=False,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 1 and says in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


def test_the_agent_puts_files_under_plain_names_only(tmp_path):
    with pytest.raises(TargetError, match=r"the DUT agent puts files under plain names, not '../x'"):
        agent.Agent(str(tmp_path))._put_file("../x", b"")


@needs_lab
@needs_system_python
def test_a_dut_agent_gone_is_the_lab_unavailable_naming_the_dut_and_the_call(pair):
    target = pair[1]
    target._agent.kill()
    target._agent.wait()
    with pytest.raises(TargetUnavailable, match=f"lost the DUT agent on {target.lab.dut} during drops\\(\\)"):
        target.drops()


def _bpftraces_of(pid: int) -> list[int]:
    """The bpftrace processes following `pid` (`bpftrace -p PID`)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        if argv[0].endswith(b"bpftrace") and b"-p" in argv and argv[argv.index(b"-p") + 1] == str(pid).encode():
            found.append(int(entry))
    return found


# over SSH, as on a lab DUT -----------------------------------------------------------------

needs_ssh_dut = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or not all(shutil.which(tool) for tool in ("nft", "bpftrace")),
    reason="the SSH DUT needs root, openssh-server, nftables and bpftrace")


@needs_ssh_dut
@needs_system_python
def test_over_ssh_the_agent_keeps_the_management_session_out_of_what_it_reports(tmp_path, monkeypatch):
    """The lab's path: sshd in a DUT namespace with a management interface
    (tests/sshlab.py), DutState naming its lab ports p0..p2, the agent's code sent
    over its stdin and run by /usr/bin/python3 -I through SSH. Once a ruleset uses conntrack,
    the SSH session itself is a connection of the DUT's namespace, and tracing is on:
    neither it nor its packets show in conntrack(), journeys() or drops(), while a
    frame the test sends into p0 does. When SSH closes the agent's stdin, the agent
    exits and deletes its trace tables."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    interfaces = [SimpleNamespace(port=port.name, name=name) for port, name in zip(PORTS, LAB_PORTS)]
    with ssh_dut(tmp_path / "sshd") as lab, SshHost(lab.dut, lab.timeouts) as host:
        # the wires' other ends stay silent, as a TRex port does (no IPv6 solicitations into p0..p2)
        subprocess.run(["ip", "netns", "exec", lab.ctl_netns, "sysctl", "-q", "-w",
                        *(f"net.ipv6.conf.t{k}.disable_ipv6=1" for k in range(len(PORTS)))], check=True)
        state = DutState(host, interfaces, lab.dut.allow, lab.dut.management, "lab.yaml")
        state.prepare()
        try:
            process = host.open_process(agent_argv(SYSTEM_PYTHON))
            channel = agent.ProcessChannel(process)
            channel.write(agent_code())
            dut = agent.RemoteDutSide(channel, where=host.address)
            assert {"drop_reasons", "nftrace", "conntrack"} <= dut.capabilities
            for argv, stdin in ((["ip", "addr", "add", f"{P0_IP}/24", "dev", "p0"], None),
                                (["ip", "neigh", "replace", H0_IP, "lladdr", P0.peer_mac, "dev", "p0", "nud",
                                  "permanent"], None),
                                (["nft", "-f", "-"], "table ip t {\n chain in {\n  type filter hook input priority 0;\n"
                                                     "  ct state established counter\n }\n}\n")):
                dut.after_command(argv, host.run(dut.before_command(argv), stdin))
            # the harness's own session, now tracked (picked up mid-stream: either direction may be "original")
            assert DUT_ADDRESS in host.run(["conntrack", "-L", "-p", "tcp"])
            with inside_netns(NetnsLab.path(lab.ctl_netns)):
                t0 = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            with t0:
                t0.bind(("t0", 0))
                t0.send(to_bytes(_from_h0(id=8) / UDP(sport=5, dport=9)))
            drops = dut.drops()
            assert [(drop.reason, drop.stage) for drop in drops] == [(DropReason.NO_SOCKET, Stage.L4)]
            assert [_addresses(journey.packet) for journey in dut.journeys([], drops)] == [f"{H0_IP} > {P0_IP}"]
            assert [entry.original[:2] for entry in dut.conntrack()] == [(H0_IP, P0_IP)]
            dut.close()
            process.stdin.close()
            assert process.wait(30) == 0
            assert "pj_trace" not in host.run(["nft", "list", "tables"])
        finally:
            assert state.release() == []
