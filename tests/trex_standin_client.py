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
from trex.stl.api import (
    Ether,
    STLClient,
    STLError,
    STLFlowLatencyStats,
    STLFlowStats,
    STLPktBuilder,
    STLStream,
    STLTXCont,
    STLTXSingleBurst,
)


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


def traffic(args: dict) -> dict:
    """A latency stream (pg_id 7) and a burst with flow stats (pg_id 8) from port 0 for
    `duration` seconds: the stats the client reports."""
    client = connect(args)
    frame = base64.b64decode(args["frame"])
    streams = [STLStream(packet=STLPktBuilder(pkt=Ether(frame)), mode=STLTXCont(pps=args["pps"]),
                         flow_stats=STLFlowLatencyStats(pg_id=7)),
               STLStream(packet=STLPktBuilder(pkt=Ether(frame)), mode=STLTXSingleBurst(total_pkts=args["burst"],
                                                                                          pps=args["pps"]),
                         flow_stats=STLFlowStats(pg_id=8), isg=args["isg_usec"])]
    client.add_streams(streams, ports=[0])
    try:
        client.start(ports=[0], duration=-1)
        refused = None
    except STLError as error:
        refused = str(error)
    client.clear_stats()
    client.start(ports=[0], duration=args["duration"])
    client.wait_on_traffic(ports=[0], timeout=60)
    stats = client.get_stats()
    keys = ("opackets", "ipackets", "obytes", "ibytes", "tx_pps", "rx_pps", "tx_bps", "rx_bps", "tx_bps_L1",
            "rx_bps_L1")
    result = {"ports": {port: {key: stats[port][key] for key in keys} for port in (0, 1, 2)},
              "total": {key: stats["total"][key] for key in keys},
              "flow_stats": {pg: {field: stats["flow_stats"][pg][field] for field in
                                  ("tx_pkts", "rx_pkts", "tx_bytes", "rx_bytes")} for pg in (7, 8)},
              "latency": stats["latency"][7], "refused": refused}
    client.remove_all_streams(ports=[0])
    client.release()
    client.disconnect()
    return result


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]](json.loads(sys.argv[2]))))
