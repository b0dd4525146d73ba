"""The official TRex client (lbr-trex-client 3.4.0, unchanged) against a TRex
stand-in, run by tests/test_trex_standin.py in a process of its own: importing
lbr_trex_client rewrites sys.path and sys.modules for its vendored scapy, yaml and
zmq. `python trex_standin_client.py SCENARIO ARGS_JSON` prints one JSON object."""
from __future__ import annotations

import base64
import json
import sys
import time

import lbr_trex_client  # noqa: F401 -- puts the client's vendored libraries in place
from trex.common.trex_client import PacketBuffer
from trex.stl.api import STLClient


def connect(args: dict) -> STLClient:
    client = STLClient(server=args.get("server", "127.0.0.1"), verbose_level="error")
    client.connect()
    client.reset()
    return client


def service(args: dict) -> dict:
    """Push frames from one port in service mode and capture what every port sees."""
    client = connect(args)
    ports = list(range(len(client.get_all_ports())))
    client.set_service_mode(ports=ports, enabled=True)
    capture = client.start_capture(tx_ports=[args["port"]], rx_ports=ports, limit=1000)
    frames = [base64.b64decode(f) for f in args["frames"]]
    client.push_packets([PacketBuffer(frame) for frame in frames], ports=[args["port"]])
    time.sleep(args.get("wait", 0.5))
    captured = []
    client.stop_capture(capture["id"], captured)
    status = client.get_capture_status()
    client.set_service_mode(ports=ports, enabled=False)
    stats = client.get_stats()
    result = {"version": client.get_server_version(), "system_info": client.get_server_system_info(),
              "captured": [{"port": p["port"], "origin": p["origin"], "binary": base64.b64encode(p["binary"]).decode()}
                           for p in captured],
              "captures_left": len(status),
              "opackets": {port: stats[port]["opackets"] for port in ports}}
    result["unknown_method"] = str(client._transmit("no_such_method").err())
    client.release()
    client.disconnect()
    return result


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]](json.loads(sys.argv[2]))))
