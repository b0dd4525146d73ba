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
import zlib
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.drivers.trex_standin import rpc
from harness.target import PORTS

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "tc")),
    reason="the TRex stand-in's lab needs root, iproute2, ethtool and procps")

CLIENT = Path(__file__).with_name("trex_standin_client.py")
REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 30.0
P0, P1 = PORTS[0], PORTS[1]


def _frame(n: int) -> bytes:
    return bytes(Ether(src=P0.peer_mac, dst=P0.mac) / IP(src="10.0.0.2", dst="10.0.1.2", id=n)
                 / UDP(sport=1000, dport=9) / (b"x" * 18))


@pytest.fixture
def standin():
    """A netns lab whose DUT sends every frame p0 receives out of p1 (tc mirred), and
    the stand-in serving the tester's t0..t2 on 127.0.0.1 in the tester namespace."""
    from harness.drivers.netns import NetnsLab
    lab = NetnsLab()
    server = None
    try:
        lab.run(lab.dut, ["tc", "qdisc", "add", "dev", "p0", "clsact"])
        lab.run(lab.dut, ["tc", "filter", "add", "dev", "p0", "ingress", "protocol", "all", "u32", "match",
                          "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "p1"])
        server = lab.popen(lab.tester, [sys.executable, "-m", "harness.drivers.trex_standin", "--ports",
                                        ",".join(p.peer for p in PORTS), "--bind", "127.0.0.1"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not select.select([server.stdout], [], [], READY_TIMEOUT)[0] or server.stdout.readline() != b"ready\n":
            server.kill()
            pytest.fail(f"the stand-in did not start: {server.stderr.read().decode()}")
        yield lab
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
            for stream in (server.stdout, server.stderr):
                stream.close()
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
    assert sorted(captured) == sorted([(0, "TX", f) for f in frames] + [(1, "RX", f) for f in frames])
    assert [c[2] for c in captured if c[1] == "RX"] == frames  # in the order they were pushed
    assert result["captures_left"] == 0  # stop_capture() removed it
    assert result["opackets"] == {"0": 3, "1": 0, "2": 0}
    assert "stand-in" in result["version"]["built_by"]
    info = result["system_info"]
    assert [p["index"] for p in info["ports"]] == [0, 1, 2]
    assert [p["hw_mac"] for p in info["ports"]] == [p.peer_mac for p in PORTS]
    assert info["packet_journey_standin"]["ports"] == [p.peer for p in PORTS]
    assert result["unknown_method"] == "Method no_such_method not registered"


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
