"""The TRex client (harness/drivers/trex.py and its worker process): how a traffic
profile becomes STL streams, checked by running their field engine as trex-core
does (src/stx/stl/trex_stl_stream_vm.h: a flow variable starts at init_value,
inc_mod()/dec_mod() over a range padded to a multiple of the step, a value_list
walked from index 0; write_flow_var big-endian; fix_checksum_ipv4 and
fix_checksum_hw recompute the IPv4 header and UDP/TCP checksums), evaluated here
independently and compared frame by frame with harness.traffic.stream_frames()
and with what the stand-in's field engine (trex_standin/vm.py) makes; how TRex's
statistics become a Result; that a missing server, a dead or a hung client
process are TrexErrors naming the server and what was being done; and, against
the TRex stand-in in a netns lab, connect, push and capture, and runs at rate.

The official client runs only in the worker process (it rewrites sys.path): these
tests reach it through TrexClient, never by importing it.
"""
from __future__ import annotations

import base64
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.drivers.trex import ROOT, TrexClient, TrexError, to_result
from harness.drivers.trex_standin.vm import StreamVm
from harness.labfile import Timeouts, Trex
from harness.target import PORTS, TargetError, TargetUnavailable
from harness.traffic import IMIX, Mode, Profile, Rate, RateUnit, Stream, Vary, VaryMode, stream_frames

TREX = Trex(host="127.0.0.1", ports={0: "p0", 1: "p1", 2: "p2"})
TIMEOUTS = Timeouts(connect=2.0)
IMIX_ORDER = (64, 594, 1518, 64, 594, 64, 64, 594, 64, 64, 594, 64)  # TRex's imix profile, one round
MACS = {"src": "02:00:00:00:01:01", "dst": "02:00:00:00:00:01"}


def udp(sport: int = 1024, dport: int = 9, **fields):
    return Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.1.2", id=7) / UDP(sport=sport, dport=dport, **fields)


@pytest.fixture(scope="module")
def mapper():
    """A client process without a server: it maps profiles to STL streams."""
    client = TrexClient(TREX, TIMEOUTS, connect=False)
    yield client
    client.close()


def stl(mapper, *streams: Stream, duration: float | None = 1.0) -> list[dict]:
    return mapper.streams(Profile(streams), duration)


# -- trex-core's field engine, written out here ----------------------------------------

def ones_complement(data: bytes, start: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_ipv4(frame: bytearray, l3: int) -> None:
    ihl = (frame[l3] & 0x0F) * 4
    frame[l3 + 10:l3 + 12] = b"\0\0"
    frame[l3 + 10:l3 + 12] = ones_complement(bytes(frame[l3:l3 + ihl])).to_bytes(2, "big")


def fix_l4(frame: bytearray, l3: int, l4: int, udp_type: bool) -> None:
    end = l3 + int.from_bytes(frame[l3 + 2:l3 + 4], "big")
    at = l4 + (6 if udp_type else 16)
    frame[at:at + 2] = b"\0\0"
    pseudo = bytes(frame[l3 + 12:l3 + 20]) + bytes([0, frame[l3 + 9]]) + (end - l4).to_bytes(2, "big")
    value = ones_complement(pseudo + bytes(frame[l4:end]))
    frame[at:at + 2] = (0xFFFF if udp_type and value == 0 else value).to_bytes(2, "big")


class FlowVar:
    """One flow variable as the data path steps it: the first packet gets
    init_value (the compiler seeds the variable with its predecessor)."""

    def __init__(self, ins: dict):
        self.op, self.step = ins["op"], ins["step"]
        self.values = ins.get("value_list")
        if self.values is not None:
            self.index = 0 if self.op == "inc" else len(self.values) - 1
            return
        self.low, self.high = ins["min_value"], ins["max_value"]
        pad = (self.high - self.low + 1) % self.step  # TrexRpcCmdAddStream::handle_range_padding()
        if pad:
            if self.op == "inc":
                self.high += self.step - pad
            else:
                self.low -= self.step - pad
        self.value = ins["init_value"]

    def next(self) -> int:
        if self.values is not None:
            value = self.values[self.index]
            self.index = (self.index + (self.step if self.op == "inc" else -self.step)) % len(self.values)
            return value
        value = self.value
        if self.op == "inc":  # inc_mod(): past max, the restart consumes one step
            left = self.high - value
            self.value = value + self.step if self.step <= left else self.low + (self.step - left - 1)
        else:
            left = value - self.low
            self.value = value - self.step if self.step <= left else self.high - (self.step - left - 1)
        return value


def field_engine_frames(stream_json: dict, count: int) -> list[bytes]:
    """The first `count` frames an STLStream's field engine makes."""
    template = base64.b64decode(stream_json["packet"]["binary"])
    instructions = stream_json["vm"]["instructions"]
    variables = {ins["name"]: FlowVar(ins) for ins in instructions if ins["type"] == "flow_var"}
    sizes = {ins["name"]: ins["size"] for ins in instructions if ins["type"] == "flow_var"}
    frames = []
    for _ in range(count):
        values = {name: var.next() for name, var in variables.items()}
        frame = bytearray(template)
        for ins in instructions:
            if ins["type"] == "write_flow_var":
                size, at = sizes[ins["name"]], ins["pkt_offset"]
                frame[at:at + size] = ((values[ins["name"]] + ins["add_value"]) % (1 << 8 * size)).to_bytes(size, "big")
            elif ins["type"] == "fix_checksum_ipv4":
                fix_ipv4(frame, ins["pkt_offset"])
            elif ins["type"] == "fix_checksum_hw":
                l3, l4 = ins["l2_len"], ins["l2_len"] + ins["l3_len"]
                fix_ipv4(frame, l3)
                fix_l4(frame, l3, l4, ins["l4_type"] == 11)
            else:
                assert ins["type"] == "flow_var", f"an instruction this evaluation does not know: {ins}"
        frames.append(bytes(frame))
    return frames


def sent(parts: list[dict], order: tuple, rounds: int) -> list[bytes]:
    """The frames of one stream's STL streams (one per size) merged in `order`
    (sizes, one round), for `rounds` rounds."""
    by_size = {part["size"]: iter(field_engine_frames(part["stream_json"], rounds * order.count(part["size"])))
               for part in parts}
    return [next(by_size[size]) for _ in range(rounds) for size in order]


def assert_makes_stream_frames(parts: list[dict], stream: Stream, order: tuple = (None,), cycles: int = 2) -> None:
    """The parts' frames merged in `order` are stream_frames(), for `cycles`
    cycles; the stand-in's field engine (trex_standin/vm.py) makes the same."""
    for part in parts:
        standin = StreamVm(base64.b64decode(part["stream_json"]["packet"]["binary"]), part["stream_json"]["vm"]).frames()
        assert standin == field_engine_frames(part["stream_json"], len(standin)), "the stand-in's field engine differs"
    cycle = stream_frames(stream)
    made = sent(parts, order, cycles * len(cycle) // len(order))
    assert len(made) == cycles * len(cycle)
    for n, frame in enumerate(made):
        assert frame == cycle[n % len(cycle)], f"packet {n} differs from stream_frames():\n{frame.hex()}\n" \
                                               f"{cycle[n % len(cycle)].hex()}"


def instructions(part: dict, kind: str) -> list[dict]:
    return [ins for ins in part["stream_json"]["vm"]["instructions"] if ins["type"] == kind]


# -- profiles into STL streams ------------------------------------------------------------

def test_inc_and_dec_fields_become_flow_var_ranges_whose_frames_are_stream_frames(mapper):
    stream = Stream.of("p1", udp(), rate=Rate(1000), id=4,
                       vary=[Vary("ip.src", 4, step=3), Vary("udp.sport", 3, VaryMode.DEC, step=5)])
    [part] = stl(mapper, stream)
    assert (part["stream"], part["size"], part["port"], part["dut_port"]) == (4, None, 1, "p1")
    ip_src, sport = instructions(part, "flow_var")
    assert (ip_src["op"], ip_src["init_value"], ip_src["min_value"], ip_src["max_value"], ip_src["step"],
            ip_src["size"]) == ("inc", 0x0A000001, 0x0A000001, 0x0A00000A, 3, 4)
    assert (sport["op"], sport["init_value"], sport["min_value"], sport["max_value"], sport["step"],
            sport["size"]) == ("dec", 1024, 1014, 1024, 5, 2)
    writes = {ins["name"]: ins["pkt_offset"] for ins in instructions(part, "write_flow_var")}
    assert writes == {ip_src["name"]: 14 + 12, sport["name"]: 14 + 20}
    [fix] = instructions(part, "fix_checksum_hw")
    assert (fix["l2_len"], fix["l3_len"], fix["l4_type"]) == (14, 20, 11)
    json = part["stream_json"]
    assert json["mode"] == {"type": "continuous", "rate": {"type": "pps", "value": 1000.0}}
    assert json["flow_stats"]["rule_type"] == "stats" and json["flow_stats"]["stream_id"] == part["pg_id"]
    assert json["flags"] & 0b111 == 0b011, "the frame's own MACs go on the wire, not the port's"
    assert_makes_stream_frames([part], stream)


def test_random_vary_is_its_permutation_in_a_value_list_not_trex_random_draws(mapper):
    stream = Stream.of("p0", udp(), vary=[Vary("ip.dst", 5, VaryMode.RANDOM, seed=11)])
    [part] = stl(mapper, stream)
    [var] = instructions(part, "flow_var")
    assert var["op"] == "inc" and "min_value" not in var
    assert sorted(var["value_list"]) == [0x0A000102 + k for k in range(5)]
    assert var["value_list"] != sorted(var["value_list"])
    assert_makes_stream_frames([part], stream)


def test_a_field_that_wraps_takes_its_values_from_a_list(mapper):
    stream = Stream.of("p0", udp(), vary=[Vary("udp.dport", 4)])
    wrapping = Stream.of("p0", udp(dport=0xFFFE), vary=[Vary("udp.dport", 4)], id=1)
    parts = stl(mapper, stream, wrapping)
    assert "value_list" not in instructions(parts[0], "flow_var")[0]
    assert instructions(parts[1], "flow_var")[0]["value_list"] == [0xFFFE, 0xFFFF, 0, 1]
    assert_makes_stream_frames(parts[1:], wrapping)


def test_a_dec_range_trex_cannot_pad_below_zero_is_a_list(mapper):
    stream = Stream.of("p0", udp(sport=12), vary=[Vary("udp.sport", 3, VaryMode.DEC, step=5)])
    [part] = stl(mapper, stream)
    assert instructions(part, "flow_var")[0]["value_list"] == [12, 7, 2]
    assert_makes_stream_frames([part], stream)


def test_udp_without_checksum_gets_only_the_ipv4_header_fixed(mapper):
    stream = Stream.of("p0", udp(chksum=0), vary=[Vary("ip.src", 3)])
    [part] = stl(mapper, stream)
    assert [ins["pkt_offset"] for ins in instructions(part, "fix_checksum_ipv4")] == [14]
    assert not instructions(part, "fix_checksum_hw")
    assert_makes_stream_frames([part], stream)
    assert all(frame[40:42] == b"\0\0" for frame in field_engine_frames(part["stream_json"], 3))


def test_tcp_port_vary_fixes_the_tcp_checksum(mapper):
    stream = Stream.of("p2", Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.1.2") / TCP(sport=1, dport=80),
                       vary=[Vary("tcp.dport", 6, step=2)])
    [part] = stl(mapper, stream)
    [fix] = instructions(part, "fix_checksum_hw")
    assert fix["l4_type"] == 13
    assert_makes_stream_frames([part], stream)


def test_a_mac_vary_writes_its_last_four_bytes_and_fixes_no_checksum(mapper):
    stream = Stream.of("p0", udp(), vary=[Vary("eth.src", 3)])
    [part] = stl(mapper, stream)
    assert [ins["pkt_offset"] for ins in instructions(part, "write_flow_var")] == [6 + 2]
    assert instructions(part, "flow_var")[0]["size"] == 4
    assert not instructions(part, "fix_checksum_hw") and not instructions(part, "fix_checksum_ipv4")
    assert_makes_stream_frames([part], stream)


def test_imix_is_a_stream_per_size_in_trex_order_each_with_its_share_of_the_rate(mapper):
    stream = Stream.of("p0", udp(), rate=Rate(10, RateUnit.PERCENT), sizes=IMIX, id=2,
                       vary=[Vary("ip.dst", 5, VaryMode.RANDOM, seed=3), Vary("udp.sport", 4, step=7)])
    parts = stl(mapper, stream)
    assert [(part["size"], part["stream_json"]["isg"]) for part in parts] == [(64, 0.0), (594, 0.1), (1518, 0.2)]
    # percent is of the line (L1): each size's weight times its 20 + size bytes on the line
    line_bytes = {64: 7 * 84, 594: 4 * 614, 1518: 1 * 1538}
    for part in parts:
        rate = part["stream_json"]["mode"]["rate"]
        assert rate["type"] == "percentage"
        assert rate["value"] == pytest.approx(10 * line_bytes[part["size"]] / sum(line_bytes.values()))
    assert len({part["pg_id"] for part in parts}) == 3
    assert_makes_stream_frames(parts, stream, IMIX_ORDER)


def test_imix_pps_and_l2_rates_split_by_weight_and_l2_bits(mapper):
    pps = Stream.of("p0", udp(), rate=Rate(1200), sizes=IMIX)
    bps = Stream.of("p1", udp(), rate=Rate(1e9, RateUnit.BPS_L2), sizes=IMIX, id=1)
    parts = stl(mapper, pps, bps)
    assert [part["stream_json"]["mode"]["rate"]["value"] for part in parts[:3]] == pytest.approx([700, 400, 100])
    l2_bytes = {64: 7 * 64, 594: 4 * 594, 1518: 1518}
    for part in parts[3:]:
        assert part["stream_json"]["mode"]["rate"] == pytest.approx(
            {"type": "bps_L2", "value": 1e9 * l2_bytes[part["size"]] / sum(l2_bytes.values())})


def test_a_burst_of_imix_splits_its_count_as_the_sizes_come(mapper):
    stream = Stream.of("p0", udp(), rate=Rate(1000), sizes=IMIX, mode=Mode.SINGLE_BURST, count=100)
    # 8 rounds of 12 (56, 32, 8), then 64, 594, 1518, 64
    assert [part["stream_json"]["mode"]["total_pkts"] for part in stl(mapper, stream)] == [58, 33, 9]
    short = Stream.of("p0", udp(), rate=Rate(1000), sizes=IMIX, mode=Mode.MULTI_BURST, count=2, bursts=3, ibg=0.5)
    modes = [part["stream_json"]["mode"] for part in stl(mapper, short)]
    assert [(mode["type"], mode["pkts_per_burst"], mode["count"], mode["ibg"]) for mode in modes] == [
        ("multi_burst", 1, 3, 500_000.0), ("multi_burst", 1, 3, 500_000.0)], "no 1518-byte frame in 2 packets"


def test_latency_streams_carry_flow_latency_stats_one_pg_id_per_size(mapper):
    plain = Stream.of("p0", udp(), rate=Rate(100))
    timed = Stream.of("p1", udp(), rate=Rate(100), sizes=((64, 1), (128, 1)), latency=True, id=9)
    parts = stl(mapper, plain, timed)
    assert [(part["stream"], part["pg_id"], part["stream_json"]["flow_stats"]["rule_type"]) for part in parts] == [
        (0, 0, "stats"), (9, 1, "latency"), (9, 2, "latency")]
    assert all(part["stream_json"]["flow_stats"]["stream_id"] == part["pg_id"] for part in parts)


def test_a_frame_that_is_not_ipv4_has_no_flow_stats(mapper):
    [part] = stl(mapper, Stream.of("p0", Ether(type=0x88B5, **MACS) / (b"x" * 50)))
    assert part["pg_id"] is None and part["stream_json"]["flow_stats"] == {"enabled": False}


def test_varying_ip_id_is_refused_because_trex_flow_stats_own_it(mapper):
    with pytest.raises(TargetError, match="ip.id") as refused:
        stl(mapper, Stream.of("p0", udp(), vary=[Vary("ip.id", 10)]))
    assert not isinstance(refused.value, TargetUnavailable), "a profile TRex cannot run is the test's, not the lab's"


# -- statistics into a Result -----------------------------------------------------------

def test_trex_statistics_map_to_a_result_by_dut_port_and_stream():
    profile = Profile((Stream.of("p0", udp(), rate=Rate(100), id=3),
                       Stream.of("p1", udp(), rate=Rate(100), sizes=((64, 1), (128, 1)), latency=True, id=5)))
    parts = [{"stream": 3, "pg_id": 0}, {"stream": 5, "pg_id": 1}, {"stream": 5, "pg_id": 2}]
    port = {"opackets": 0, "ipackets": 0, "obytes": 0, "ibytes": 0}
    answer = {
        "parts": parts, "duration": 2.0, "drained": True, "cut": [],
        "ports": {"0": {"opackets": 200, "ipackets": 10, "obytes": 12000, "ibytes": 600},
                  "1": {"opackets": 200, "ipackets": 196, "obytes": 18800, "ibytes": 18424}, "2": port},
        "flow_stats": {"0": {"tx_pkts": 200, "rx_pkts": 190, "tx_bytes": 12000, "rx_bytes": 11400},
                       "1": {"tx_pkts": 100, "rx_pkts": 100, "tx_bytes": 6000, "rx_bytes": 6000},
                       "2": {"tx_pkts": 100, "rx_pkts": 96, "tx_bytes": 12400, "rx_bytes": 11904}},
        "latency": {"1": {"err_cntrs": {"out_of_order": 1, "dup": 0}, "histogram": {"10": 60, "20": 40},
                          "average": 14.0, "jitter": 2.0, "total_min": 9.0, "total_max": 28.0},
                    "2": {"err_cntrs": {"out_of_order": 0, "dup": 2}, "histogram": {"20": 90, "30": 6},
                          "average": 24.0, "jitter": 4.0, "total_min": 21.0, "total_max": 35.0}}}
    result = to_result(profile, answer, {0: "p0", 1: "p1", 2: "p2"}, 2.0)
    assert (result.duration, list(result.ports)) == (2.0, ["p0", "p1", "p2"])
    assert (result.ports["p1"].opackets, result.ports["p1"].ipackets) == (200, 196)
    assert result.ports["p0"].tx_pps == 100.0
    plain, timed = result.streams[3], result.streams[5]
    assert (plain.opackets, plain.ipackets, plain.lost, plain.latency) == (200, 190, 10, None)
    assert (timed.opackets, timed.ipackets, timed.out_of_order, timed.duplicates) == (200, 196, 1, 2)
    assert timed.latency.min_us == 9.0 and timed.latency.max_us == 35.0
    assert timed.latency.avg_us == pytest.approx((14.0 * 100 + 24.0 * 96) / 196)
    assert timed.latency.histogram == {10: 60, 20: 130, 30: 6}
    assert any("joins its 2 sizes" in note for note in result.notes)


def test_an_undrained_dut_cut_bursts_and_a_late_end_are_said_in_the_notes():
    profile = Profile((Stream.of("p0", udp()),))
    port = {"opackets": 0, "ipackets": 0, "obytes": 0, "ibytes": 0}
    answer = {"parts": [{"stream": 0, "pg_id": 0}], "duration": 2.5, "drained": False, "cut": [0],
              "ports": {"0": port, "1": port, "2": port},
              "flow_stats": {"0": {"tx_pkts": 5, "rx_pkts": 0, "tx_bytes": 300, "rx_bytes": 0}}, "latency": {}}
    notes = to_result(profile, answer, {0: "p0", 1: "p1", 2: "p2"}, 1.0).notes
    assert any("had not drained" in note for note in notes)
    assert any(note.startswith("streams [0] are bursts run with continuous streams") for note in notes)
    assert "the streams were due to end after 1.000 s; TRex said they had after 2.500 s" in notes


# -- failures are the lab's -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_server_at_the_address_is_a_trex_error_within_the_connect_timeout_naming_it():
    port = free_port()
    trex = TREX.model_copy(update={"sync_port": port, "async_port": free_port()})
    started = time.monotonic()
    with pytest.raises(TrexError, match=rf"TRex at 127\.0\.0\.1:{port}: connecting .*: .*tcp://127\.0\.0\.1:{port}"):
        TrexClient(trex, Timeouts(connect=1.0))
    # the client's import takes 1-2 s, its connection attempt the connect timeout
    assert time.monotonic() - started < 1.0 + 10


def test_a_client_process_killed_mid_call_is_a_trex_error():
    client = TrexClient(TREX, TIMEOUTS, connect=False)
    try:
        client.streams(Profile(()), None)  # started: the next call finds it at work
        slow = Profile((Stream.of("p0", udp(), vary=[Vary("ip.src", 1 << 20)]),))  # a million frames to read
        threading.Timer(0.3, os.kill, (client._worker.process.pid, signal.SIGKILL)).start()
        with pytest.raises(TrexError, match=r"TRex at 127\.0\.0\.1:4501: mapping 1 streams .*ended: status -9"):
            client.streams(slow, 1.0)
        with pytest.raises(TrexError, match="ended: status -9"):
            client.streams(Profile(()), None)
    finally:
        client.close()


def test_a_hung_client_process_is_stopped_after_the_trex_timeout():
    client = TrexClient(TREX, Timeouts(trex=0.5), connect=False)
    try:
        client.streams(Profile(()), None)
        os.kill(client._worker.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(TrexError, match=r"no answer within 0\.5 s and was stopped"):
            client.streams(Profile(()), None)
        assert time.monotonic() - started < 5
        assert client._worker.process.poll() is not None
    finally:
        client.close()


def test_without_a_connection_only_streams_work():
    client = TrexClient(TREX, TIMEOUTS, connect=False)
    try:
        with pytest.raises(TargetError, match="not connected"):
            client.push("p0", [bytes(udp())])
        with pytest.raises(TargetError, match="not connected"):
            client.caps()
    finally:
        client.close()
        client.close()


# -- against the TRex stand-in (harness/drivers/trex_standin) ---------------------------------
# Only the stand-in has been checked here: a real TRex answers the same client, but
# its rates, pg_id rules (IPv4 id rewrites) and latency header are TRex's own.

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "tc")),
    reason="the TRex stand-in's lab needs root, iproute2, ethtool and procps")
READY_TIMEOUT = 30.0


@contextmanager
def standin_server(lab):
    """The stand-in serving t0..t2 on 127.0.0.1 in the lab's tester namespace."""
    said = tempfile.TemporaryFile()  # the server's stderr: a pipe nobody reads could fill and stall it
    server = lab.popen(lab.tester, [sys.executable, "-m", "harness.drivers.trex_standin", "--ports",
                                    ",".join(p.peer for p in PORTS), "--bind", "127.0.0.1"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=said)
    try:
        if not select.select([server.stdout], [], [], READY_TIMEOUT)[0] or server.stdout.readline() != b"ready\n":
            server.kill()
            server.wait()
            said.seek(0)
            pytest.fail(f"the stand-in did not start: {said.read().decode()}")
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
        said.close()


@pytest.fixture(scope="module")
def standin_lab():
    """A netns lab whose DUT sends every frame p0 receives out of p1 and back (tc
    mirred), with the stand-in serving its tester ports."""
    from harness.drivers.netns import NetnsLab
    lab = NetnsLab()
    try:
        for into, out in (("p0", "p1"), ("p1", "p0")):
            lab.run(lab.dut, ["tc", "qdisc", "add", "dev", into, "clsact"])
            lab.run(lab.dut, ["tc", "filter", "add", "dev", into, "ingress", "protocol", "all", "u32", "match", "u32",
                              "0", "0", "action", "mirred", "egress", "redirect", "dev", out])
        with standin_server(lab):
            yield lab
    finally:
        lab.close()


@pytest.fixture
def standin(standin_lab):
    client = TrexClient(TREX.model_copy(update={"via_netns": standin_lab.tester}), TIMEOUTS)
    yield client
    client.close()


def tagged(n: int) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.1.2", id=n)
                 / UDP(sport=1000, dport=9) / (b"x" * 18))


@needs_lab
def test_frames_pushed_towards_p0_are_received_from_p1_as_they_left_the_dut(standin):
    frames = [tagged(n) for n in range(3)]
    standin.push("p0", frames)
    assert standin.received(timeout=5.0) == {"p0": [], "p1": frames, "p2": []}
    assert standin.received(timeout=0.0) == {"p0": [], "p1": [], "p2": []}, "fetched frames are gone"


@needs_lab
def test_a_server_error_is_a_trex_error_naming_what_was_done_and_the_client_goes_on(standin):
    with pytest.raises(TrexError, match=r"\(from netns .*\): pushing 1 frames out of port 0 \(to p0\): .*"
                                        r"Bad packet size provided: 10"):
        standin.push("p0", [bytes(10)])
    standin.push("p0", [tagged(2)])
    assert standin.received(timeout=5.0)["p1"] == [tagged(2)]


@needs_lab
def test_a_server_that_went_away_is_a_trex_error_within_the_connect_timeout():
    from harness.drivers.netns import NetnsLab
    lab = NetnsLab()
    try:
        with standin_server(lab) as server:
            client = TrexClient(TREX.model_copy(update={"via_netns": lab.tester}), Timeouts(connect=1.0))
            try:
                server.kill()
                started = time.monotonic()
                with pytest.raises(TrexError, match=r"TRex at 127\.0\.0\.1:4501 \(from netns .*\): pushing 1 frames"):
                    client.push("p0", [tagged(3)])
                assert time.monotonic() - started < 1.0 + 5
            finally:
                client.close()
    finally:
        lab.close()


@needs_lab
def test_the_stand_in_says_what_it_is(standin):
    identity = standin.identity()
    assert (identity["address"], identity["via_netns"]) == ("127.0.0.1:4501", standin.via_netns)
    assert "stand-in" in identity["version"]["built_by"]
    assert [port["index"] for port in identity["system_info"]["ports"]] == [0, 1, 2]


@needs_lab
def test_a_one_second_run_through_the_dut_loses_nothing_and_measures_latency(standin):
    caps = standin.caps()
    declared = standin.identity()["system_info"]["packet_journey_standin"]
    assert caps.generator.startswith("TRex stand-in at 127.0.0.1:4501")
    assert (caps.max_pps, caps.max_bps_L1) == (declared["max_pps"], min(declared["max_bps_L1"], 10e9))
    stream = Stream.of("p0", tagged(0), rate=Rate(2000), latency=True, vary=[Vary("udp.sport", 8)])
    standin.push("p0", [tagged(5)])
    time.sleep(0.5)  # back through the DUT before the run begins, not yet fetched
    result = standin.run(Profile((stream,)), 1.0)
    sent = result.streams[0]
    assert sent.opackets == pytest.approx(2000, rel=0.01)
    assert (sent.ipackets, sent.lost, sent.out_of_order, sent.duplicates) == (sent.opackets, 0, 0, 0)
    assert (result.ports["p0"].opackets, result.ports["p1"].ipackets) == (sent.opackets, sent.opackets)
    assert 0 < sent.latency.min_us <= sent.latency.avg_us <= sent.latency.max_us
    assert sum(sent.latency.histogram.values()) == sent.ipackets
    assert standin.received(timeout=0.0) == {"p0": [], "p1": [tagged(5)], "p2": []}, \
        "what arrived before the run is kept, the run's frames are not functional"
    assert standin.received(timeout=0.0) == {"p0": [], "p1": [], "p2": []}
    standin.push("p1", [tagged(1)])
    assert standin.received(timeout=5.0) == {"p0": [tagged(1)], "p1": [], "p2": []}, "service mode is back"


@needs_lab
def test_a_burst_is_counted_whole_per_stream_and_port(standin):
    burst = Stream.of("p1", tagged(0), rate=Rate(5000), mode=Mode.SINGLE_BURST, count=500, id=7)
    result = standin.run(Profile((burst,)), None)
    assert (result.streams[7].opackets, result.streams[7].ipackets) == (500, 500)
    assert (result.ports["p1"].opackets, result.ports["p0"].ipackets, result.ports["p2"].ipackets) == (500, 500, 0)
    assert result.duration == pytest.approx(499 / 5000)
    assert result.streams[7].latency is None


@needs_lab
def test_an_imix_burst_with_latency_joins_its_three_sizes_into_one_stream(standin):
    imix = Stream.of("p0", tagged(0), rate=Rate(6000), sizes=IMIX, mode=Mode.SINGLE_BURST, count=120, latency=True,
                     vary=[Vary("udp.sport", 5)], id=3)
    result = standin.run(Profile((imix,)), None)
    joined = result.streams[3]
    assert (joined.opackets, joined.ipackets) == (120, 120)
    # 10 rounds of 7 x 64, 4 x 594 and 1 x 1518 bytes (with FCS)
    assert joined.obytes == 10 * (7 * 60 + 4 * 590 + 1514)
    assert sum(joined.latency.histogram.values()) == 120
    assert any("joins its 3 sizes" in note for note in result.notes)
