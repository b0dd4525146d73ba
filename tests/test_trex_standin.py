"""The TRex stand-in (harness/drivers/trex_standin) as the official client sees it:
the unchanged lbr-trex-client 3.4.0, in a process of its own, connects, acquires,
resets, pushes and captures frames in service mode through a netns lab's DUT.

The lab runs need root and iproute2 (and a C compiler for traffic); without them
they skip saying so. The JSON-RPC framing is tested everywhere.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.drivers.trex_standin import engine, rpc, vm
from harness.drivers.trex_standin.capture import Capture
from harness.target import PORTS

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "tc")),
    reason="the TRex stand-in's lab needs root, iproute2, ethtool and procps")

CLIENT = Path(__file__).with_name("trex_standin_client.py")
REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 30.0
P0, P1 = PORTS[0], PORTS[1]
H0_IP, P0_IP, P1_IP, H1_IP = "10.0.0.2", "10.0.0.1", "10.0.1.1", "10.0.1.2"


def _frame(n: int, payload: int = 18) -> bytes:
    return bytes(Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=H1_IP, id=n)
                 / UDP(sport=1000, dport=9) / (b"x" * payload))


def _forwarded(frame: bytes) -> bytes:
    """What the DUT sends out of p1 for `frame`: new MACs, TTL one less, checksum redone."""
    packet = Ether(frame)
    packet.src, packet.dst = P1.mac, P1.peer_mac
    packet[IP].ttl -= 1
    del packet[IP].chksum
    return bytes(packet)


@pytest.fixture
def standin():
    """A netns lab whose DUT routes 10.0.0.0/24 on p0 to 10.0.1.2 on p1, and the
    stand-in serving the tester's t0..t2 on 127.0.0.1 in the tester namespace."""
    from harness.drivers.netns import NetnsLab
    lab = NetnsLab()
    log = tempfile.TemporaryFile()  # the server's stderr: a pipe nobody reads could stall it
    server = None
    try:
        for command in (["ip", "addr", "add", f"{P0_IP}/24", "dev", "p0"],
                        ["ip", "addr", "add", f"{P1_IP}/24", "dev", "p1"],
                        ["ip", "neigh", "replace", H1_IP, "lladdr", P1.peer_mac, "dev", "p1", "nud", "permanent"],
                        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]):
            lab.run(lab.dut, command)
        server = lab.popen(lab.tester, [sys.executable, "-m", "harness.drivers.trex_standin", "--ports",
                                        ",".join(p.peer for p in PORTS), "--bind", "127.0.0.1"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=log)
        if not select.select([server.stdout], [], [], READY_TIMEOUT)[0] or server.stdout.readline() != b"ready\n":
            server.kill()
            log.seek(0)
            pytest.fail(f"the stand-in did not start: {log.read().decode()}")
        yield lab
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()
        log.close()
        lab.close()


def run_client(lab, scenario: str, **args) -> dict:
    """tests/trex_standin_client.py's `scenario` in the tester namespace: its JSON."""
    result = subprocess.run(["ip", "netns", "exec", lab.tester, sys.executable, str(CLIENT), scenario,
                             json.dumps(args)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_lab
def test_the_official_client_pushes_in_service_mode_and_captures_what_the_dut_sends_back(standin):
    frames = [_frame(n) for n in range(3)]
    result = run_client(standin, "service", port=0, frames=[base64.b64encode(f).decode() for f in frames])
    captured = [(c["port"], c["origin"], base64.b64decode(c["binary"])) for c in result["captured"]]
    expected = [(0, "TX", f) for f in frames] + [(1, "RX", _forwarded(f)) for f in frames]
    assert sorted(captured) == sorted(expected)
    assert [c[2] for c in captured if c[1] == "RX"] == [_forwarded(f) for f in frames]  # in push order
    assert result["captures_left"] == 0  # stop_capture() removed it
    assert result["opackets"] == {"0": 3, "1": 0, "2": 0}
    assert "stand-in" in result["version"]["built_by"]
    info = result["system_info"]
    assert [p["index"] for p in info["ports"]] == [0, 1, 2]
    assert [p["hw_mac"] for p in info["ports"]] == [p.peer_mac for p in PORTS]
    assert info["packet_journey_standin"]["ports"] == [p.peer for p in PORTS]
    assert result["unknown_method"] == "Method no_such_method not registered"


@needs_lab
def test_a_latency_stream_through_a_forwarding_dut_counts_every_packet_per_port_and_pg_id(standin):
    frame = _frame(0, payload=64)
    pps, duration, burst = 1000, 1.0, 500
    result = run_client(standin, "traffic", frame=base64.b64encode(frame).decode(), pps=pps,
                        duration=duration, burst=burst, isg_usec=1000)
    assert "needs a duration for continuous streams" in result["refused"]  # start(duration=-1)
    sent = pps * duration + burst
    ports = result["ports"]
    assert (ports["0"]["opackets"], ports["1"]["ipackets"]) == (sent, sent)
    assert (ports["0"]["ipackets"], ports["1"]["opackets"], ports["2"]["ipackets"]) == (0, 0, 0)
    assert ports["0"]["obytes"] == sent * len(frame)
    assert ports["1"]["ibytes"] == sent * len(frame)  # forwarding keeps the length
    assert result["total"]["opackets"] == sent
    assert ports["0"]["tx_bps_L1"] == pytest.approx(ports["0"]["tx_bps"] + ports["0"]["tx_pps"] * 20 * 8)
    assert ports["0"]["tx_pps"] > 0 and ports["1"]["rx_pps"] == pytest.approx(ports["0"]["tx_pps"])
    latency_flow, burst_flow = result["flow_stats"]["7"], result["flow_stats"]["8"]
    assert latency_flow["tx_pkts"] == {"0": pps * duration, "1": 0, "2": 0, "total": pps * duration}
    assert latency_flow["rx_pkts"] == {"0": 0, "1": pps * duration, "2": 0, "total": pps * duration}
    assert burst_flow["tx_pkts"]["total"] == burst == burst_flow["rx_pkts"]["1"]
    assert burst_flow["rx_bytes"]["1"] == burst * len(frame)
    latency = result["latency"]
    assert latency["err_cntrs"] == {"dropped": 0, "out_of_order": 0, "dup": 0, "seq_too_high": 0,
                                    "seq_too_low": 0}
    lat = latency["latency"]
    assert 0 < lat["total_min"] <= lat["average"] <= lat["total_max"] < 1e6  # microseconds, under a second
    assert lat["jitter"] >= 0
    assert sum(lat["histogram"].values()) == pps * duration
    assert all(bucket == 0 or str(bucket)[1:].strip("0") == "" for bucket in map(int, lat["histogram"]))


def test_a_full_capture_numbers_the_frames_it_drops_fixed_keeping_the_first_cyclic_the_last():
    fixed = Capture(1, frozenset({0}), frozenset(), limit=2, cyclic=False, start_ts=0.0)
    cyclic = Capture(2, frozenset({0}), frozenset(), limit=2, cyclic=True, start_ts=0.0)
    for n in range(4):
        for capture in (fixed, cyclic):
            capture.take(bytes([n]), 0, "TX", float(n))
    assert [(f.index, f.binary) for f in fixed.frames] == [(1, b"\0"), (2, b"\1")]
    assert [(f.index, f.binary) for f in cyclic.frames] == [(3, b"\2"), (4, b"\3")]
    assert fixed.to_json()["matched"] == cyclic.to_json()["matched"] == 4


def _dispatcher() -> rpc.Dispatcher:
    dispatcher = rpc.Dispatcher(api_handler="cafe")
    dispatcher.register("get_version", lambda params: {"version": "v3.04"}, needs_api=False)
    dispatcher.register("echo", lambda params: params["value"])
    dispatcher.register("take", lambda params: rpc.param_int(params, "count"))
    return dispatcher


def _request(method: str, msg_id: int = 1, **params) -> dict:
    return {"jsonrpc": "2.0", "method": method, "id": msg_id, "params": params}


def test_a_compressed_request_is_answered_compressed_behind_trexs_header():
    request = json.dumps(_request("get_version")).encode()
    reply = _dispatcher().answer(struct.pack(">II", 0xABE85CEA, len(request)) + zlib.compress(request))
    magic, length = struct.unpack(">II", reply[:8])
    inner = zlib.decompress(reply[8:])
    assert (magic, length) == (0xABE85CEA, len(inner))
    assert json.loads(inner) == {"jsonrpc": "2.0", "id": 1, "result": {"version": "v3.04"}}


def test_a_batch_is_answered_in_order_and_a_batch_of_one_by_the_single_reply():
    dispatcher = _dispatcher()
    batch = [_request("echo", 1, value="a", api_h="cafe"), _request("echo", 2, value="b", api_h="cafe")]
    assert [r["result"] for r in json.loads(dispatcher.answer(json.dumps(batch).encode()))] == ["a", "b"]
    single = json.loads(dispatcher.answer(json.dumps(batch[:1]).encode()))
    assert single == {"jsonrpc": "2.0", "id": 1, "result": "a"}


def test_errors_carry_trexs_codes_and_the_specific_error_the_client_shows():
    dispatcher = _dispatcher()

    def error(request: dict) -> dict:
        return json.loads(dispatcher.answer(json.dumps(request).encode()))["error"]

    assert error(_request("nope")) == {"code": -32601, "message": "Method nope not registered"}
    assert error(_request("echo", value=1, api_h="beef")) == {
        "code": -32000, "message": "Failed To Execute Method",
        "specific_err": "API verification failed - API handler provided mismatch for class: 'STL'"}
    assert error(_request("take", api_h="cafe", count="3")) == {
        "code": -32602, "message": "Bad parameters for method",
        "specific_err": "'count' is 'str', expecting 'int'"}
    assert json.loads(dispatcher.answer(b"{not json")) == {
        "jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Bad JSON Format"}}


def test_a_command_that_breaks_is_an_internal_error_naming_it_and_the_server_serves_on():
    dispatcher = _dispatcher()
    dispatcher.register("broken", lambda params: 1 / 0)
    reply = json.loads(dispatcher.answer(json.dumps(_request("broken", api_h="cafe")).encode()))
    assert reply["error"] == {"code": -32603, "message": "Internal Server Error",
                              "specific_err": "broken: ZeroDivisionError: division by zero"}
    assert json.loads(dispatcher.answer(json.dumps(_request("get_version", 2)).encode()))["result"]


def test_events_are_queued_per_session_in_sequence_behind_a_published_trigger():
    published = []
    publisher = rpc.Publisher(published.append)
    publisher.add_session(7)
    publisher.publish_event(5, {"port_id": 0})
    publisher.publish_event(6, {"port_id": 0})
    assert published == [b"{}", b"{}"]
    assert [(e["type"], e["seq"]) for e in publisher.take_events(7)] == [(5, 0), (6, 1)]
    assert publisher.take_events(7) == []
    assert publisher.take_events(8) == []  # a new session starts empty


# ------------------------------------------------------------------- the field engine

IP_TTL, IP_CHECK, IP_SRC, UDP_CHECK = 22, 24, 26, 40  # offsets in an Ether/IPv4/UDP frame


def _vm(*instructions, cache: int | None = None) -> dict:
    return {"instructions": list(instructions), **({"cache": cache} if cache else {})}


def _flow_var(name="v", size=1, op="inc", low=0, high=255, step=1, init=None):
    return {"type": "flow_var", "name": name, "size": size, "op": op, "step": step, "min_value": low,
            "max_value": high, "init_value": low if init is None and op != "dec" else high if init is None else init}


def _write(name="v", offset=IP_SRC, add=0, big=True):
    return {"type": "write_flow_var", "name": name, "pkt_offset": offset, "add_value": add, "is_big_endian": big}


def test_an_incrementing_source_address_starts_at_init_wraps_to_min_and_fixes_the_ip_checksum():
    packet = _frame(0)
    frames = vm.StreamVm(packet, _vm(_flow_var(size=4, low=0x10000001, high=0x10000003, init=0x10000002),
                                     _write(), {"type": "fix_checksum_ipv4", "pkt_offset": 14})).frames()
    assert [f[IP_SRC:IP_SRC + 4] for f in frames] == [bytes([16, 0, 0, 2]), bytes([16, 0, 0, 3]), bytes([16, 0, 0, 1])]
    for frame in frames:
        rebuilt = Ether(frame)
        del rebuilt[IP].chksum
        assert bytes(rebuilt) == frame  # scapy's own checksum for the new source agrees
    assert frames[0][IP_CHECK:IP_CHECK + 2] != packet[IP_CHECK:IP_CHECK + 2]


def test_a_decrementing_var_with_a_step_pads_its_range_to_a_whole_cycle():
    # min 1 max 5 step 2: the range pads down to 0 so that 6 values cycle in 3 steps
    frames = vm.StreamVm(_frame(0), _vm(_flow_var(op="dec", low=1, high=5, step=2), _write(offset=IP_TTL))).frames()
    assert [f[IP_TTL] for f in frames] == [5, 3, 1]
    inc = vm.StreamVm(_frame(0), _vm(_flow_var(low=0, high=4, step=2), _write(offset=IP_TTL))).frames()
    assert [f[IP_TTL] for f in inc] == [0, 2, 4]  # then 0 again: max pads to 5, the wrap takes a step


def test_a_vm_whose_frames_repeat_after_more_than_4096_is_refused_not_cut_short():
    program = _vm(_flow_var(size=2, low=0, high=4999), _write(offset=IP_SRC))
    with pytest.raises(vm.VmError, match="repeat after 5000.* at most 4096"):
        vm.StreamVm(_frame(0), program).frames()
    cached = vm.StreamVm(_frame(0), _vm(_flow_var(size=2, low=0, high=4999), _write(offset=IP_SRC), cache=100))
    assert [f[IP_SRC:IP_SRC + 2] for f in cached.frames()] == [n.to_bytes(2, "big") for n in range(100)]


def test_add_value_and_little_endian_writes_truncate_to_the_vars_size():
    frames = vm.StreamVm(_frame(0), _vm(_flow_var(size=2, low=0xFFFE, high=0xFFFF), _write(offset=IP_SRC, add=1),
                                        _write(offset=IP_SRC + 2, big=False))).frames()
    assert [f[IP_SRC:IP_SRC + 4].hex() for f in frames] == ["fffffeff", "0000ffff"]


def test_a_random_var_draws_trexs_fastrand_within_its_range():
    frames = vm.StreamVm(_frame(0), _vm(_flow_var(op="random", low=10, high=20), _write(offset=IP_TTL),
                                        cache=50)).frames()
    # seed 0: the first draw is (214013 * 0 + 2531011) >> 16 & 0x7fff = 38, and 10 + 38 % 11 = 15
    assert len(frames) == 50 and frames[0][IP_TTL] == 15
    assert {f[IP_TTL] for f in frames} <= set(range(10, 21)) and len({f[IP_TTL] for f in frames}) > 5


def test_the_hardware_checksum_fix_leaves_valid_ip_and_udp_checksums():
    packet = bytearray(_frame(0))
    frames = vm.StreamVm(bytes(packet), _vm(_flow_var(size=4, low=1, high=2), _write(offset=IP_SRC),
                                            {"type": "fix_checksum_hw", "l2_len": 14, "l3_len": 20,
                                             "l4_type": 11})).frames()
    for frame in frames:
        rebuilt = Ether(frame)
        del rebuilt[IP].chksum, rebuilt[UDP].chksum
        assert bytes(rebuilt) == frame
        assert frame[UDP_CHECK:UDP_CHECK + 2] != b"\0\0"


def test_a_masked_write_keeps_the_bits_outside_the_mask():
    frames = vm.StreamVm(_frame(0), _vm(_flow_var(low=1, high=2), {
        "type": "write_mask_flow_var", "name": "v", "pkt_offset": IP_SRC, "pkt_cast_size": 2, "mask": 0x00F0,
        "shift": 4, "add_value": 0, "is_big_endian": True})).frames()
    # 10.0.0.2 starts 0x0a00: the var, shifted by 4, lands in bits 4..7; the rest stays
    assert [f[IP_SRC:IP_SRC + 2].hex() for f in frames] == ["0a10", "0a20"]


def test_trim_shortens_the_frame_and_a_short_packet_is_padded_to_60_bytes():
    frames = vm.StreamVm(_frame(0, payload=40), _vm(_flow_var(size=2, low=64, high=66), {
        "type": "trim_pkt_size", "name": "v"})).frames()
    assert [len(f) for f in frames] == [64, 65, 66]
    assert vm.StreamVm(bytes(20), _vm()).frames() == [bytes(60)]


def test_chained_vars_are_refused_naming_what_the_stand_in_lacks():
    with pytest.raises(vm.VmError, match="next_var"):
        vm.StreamVm(_frame(0), _vm({**_flow_var(), "next_var": "w"}, _flow_var(name="w")))
    with pytest.raises(vm.VmError, match="tuple_flow_var"):
        vm.StreamVm(_frame(0), _vm({"type": "tuple_flow_var", "name": "t"}))


def test_a_session_that_stopped_fetching_gets_no_more_events():
    now = [0.0]
    publisher = rpc.Publisher(lambda message: None, clock=lambda: now[0])
    publisher.add_session(1)
    publisher.publish_event(5, {"port_id": 0})
    now[0] = rpc.STALE_SESSION
    publisher.publish_event(6, {"port_id": 0})
    assert [e["type"] for e in publisher.take_events(1)] == [5]


# ------------------------------------------------------------- streams and multipliers

def _stream_json(rate_type: str, value: float, frame: bytes, flags: int = 3, mode: dict | None = None) -> dict:
    return {"enabled": True, "self_start": True, "isg": 0.0, "next_stream_id": -1, "flags": flags,
            "action_count": 0, "core_id": -1, "packet": {"binary": base64.b64encode(frame).decode(), "meta": ""},
            "mode": {"type": "continuous", **(mode or {}), "rate": {"type": rate_type, "value": value}},
            "vm": {"instructions": []}, "flow_stats": {"enabled": False}}


def test_a_streams_rate_counts_the_fcs_and_the_l1_overhead_as_trex_does():
    frame = _frame(0)  # 60 bytes
    assert len(frame) == 60
    compiled = {rate: engine.compile_stream(0, P0.peer_mac, 1, _stream_json(rate, value, frame))
                for rate, value in (("pps", 1000.0), ("bps_L2", 1e9), ("bps_L1", 1e9), ("percentage", 10.0))}
    assert compiled["pps"].pps(10e9) == 1000.0
    assert compiled["bps_L2"].pps(10e9) == pytest.approx(1e9 / (64 * 8))
    assert compiled["bps_L1"].pps(10e9) == pytest.approx(1e9 / (84 * 8))
    assert compiled["percentage"].pps(10e9) == pytest.approx(1e9 / (84 * 8))


def test_a_stream_without_its_own_source_mac_gets_the_ports():
    frame = _frame(0)
    stream = engine.compile_stream(0, "02:aa:bb:cc:dd:ee", 1, _stream_json("pps", 10.0, frame, flags=0))
    assert stream.frames == [frame[:6] + bytes.fromhex("02aabbccddee") + frame[12:]]


def test_a_multiplier_scales_the_ports_streams_to_the_rate_asked_and_refuses_more_than_the_line():
    frame = _frame(0)
    streams = [engine.compile_stream(0, P0.peer_mac, n, _stream_json("pps", pps, frame))
               for n, pps in ((1, 100.0), (2, 300.0))]

    def factor(kind: str, value: float, force: bool = False) -> float:
        return engine.multiplier_factor(streams, {"type": kind, "op": "abs", "value": value}, 10e9, force)

    assert factor("raw", 2) == 2
    assert factor("pps", 1000) == pytest.approx(2.5)
    assert factor("bpsl1", 400 * 84 * 8 * 3) == pytest.approx(3)
    assert factor("percentage", 100) == pytest.approx(10e9 / (400 * 84 * 8))
    with pytest.raises(rpc.RpcError, match="exceeds port line rate"):
        factor("pps", 20e6)
    assert factor("pps", 20e6, force=True) == pytest.approx(20e6 / 400)


def test_a_disabled_or_dummy_stream_sends_nothing():
    frame = _frame(0)
    assert engine.compile_stream(0, P0.peer_mac, 1, _stream_json("pps", 1.0, frame)).sends
    assert not engine.compile_stream(0, P0.peer_mac, 1, {**_stream_json("pps", 1.0, frame), "enabled": False}).sends
    assert not engine.compile_stream(0, P0.peer_mac, 1, _stream_json("pps", 1.0, frame, flags=3 | 8)).sends


def test_stream_chaining_is_refused_naming_it():
    chained = {**_stream_json("pps", 10.0, _frame(0)), "self_start": False}
    with pytest.raises(rpc.RpcError, match="stream chaining"):
        engine.compile_stream(0, P0.peer_mac, 1, chained)


def test_a_udp_checksum_that_sums_to_zero_goes_out_as_all_ones():
    """RFC 768 (udp4_hwcsum(), a NIC's checksum offload): 0 would mean "no checksum"."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    packet = Ether() / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=1, dport=2) / b"\x00\x00payload!"
    natural = Ether(bytes(packet))[UDP].chksum  # the ones' complement of the sum: add it, the sum is all ones
    frame = bytearray(bytes(packet))
    payload = len(frame) - 10
    word = (int.from_bytes(frame[payload:payload + 2], "big") + natural) % 0xFFFF
    frame[payload:payload + 2] = word.to_bytes(2, "big")
    vm.fix_hw(frame, 14, 20, vm.L4_TYPE_UDP)
    assert frame[14 + 20 + 6:14 + 20 + 8] == b"\xff\xff"
    recomputed = Ether(bytes(frame))
    del recomputed[UDP].chksum  # scapy computes it afresh, and sends a 0 as all ones too
    assert Ether(bytes(recomputed))[UDP].chksum == 0xFFFF
