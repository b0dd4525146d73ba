"""A STAND-IN for a TRex server (stateless mode): TRex's RPC commands over this host's ports.

The real TRex cannot run here. This server answers the commands lbr-trex-client
3.4.0 (the TRex v3.04 Python client, unchanged) sends, with the results trex-core's
own handlers give, read from trex-core src/stx/common/trex_rpc_cmds_common.cpp and
src/stx/stl/trex_stl_rpc_cmds.cpp; any other method is answered "Method X not
registered" as TRex answers an unknown one. It says what it is: get_version's
`built_by` and get_system_info's `packet_journey_standin` (the generator's limits).

TRex port i is the i-th interface of --ports, in the namespace the server runs in.
Service mode (push_pkts, capture) is capture.PortIO; traffic (streams, start/stop,
flow stats and latency by pg_id) is engine.TrafficEngine, pjgen sending the frames
vm.py's field engine makes.
"""
from __future__ import annotations

import base64
import binascii
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.drivers import generator
from harness.drivers.trex_standin import rpc, vm
from harness.drivers.trex_standin.engine import Start, Stream, TrafficEngine, TrafficRun, apply_stats, \
    compile_stream, multiplier_factor
from harness.drivers.trex_standin.capture import MAX_PKT_SIZE, MIN_PKT_SIZE, CaptureError, PortIO
from harness.drivers.trex_standin.rpc import execute_error, parse_error, port_id
from harness.drivers.trex_standin.stats import PgidTable, PortCounters, global_stats
from harness.mockkernel.wire.ethernet import EthernetFrame, mac_to_bytes

# What `api_sync_v2` accepts: lbr-trex-client 3.4.0's STL API version
# (trex/stl/trex_stl_client.py: api_ver = {'name': 'STL', 'major': 5, 'minor': 1}).
API_CLASS, API_MAJOR, API_MINOR = "STL", 5, 1
VERSION = "v3.04"
DEFAULT_PROFILE_ID = "_"
ALL_PROFILE_ID = "*"

# trex-core src/publisher/trex_publisher.h, event_type_e
EVENT_PORT_JOB_DONE = 4
EVENT_PORT_ACQUIRED = 5
EVENT_PORT_RELEASED = 6
EVENT_PROFILE_STARTED = 10
EVENT_PROFILE_STOPPED = 11
EVENT_PROFILE_FINISHED_TX = 14
EVENT_PROFILE_ERROR = 17

IFF_PROMISC, IFF_ALLMULTI = 0x100, 0x200
ZERO_MAC = "00:00:00:00:00:00"


def sysfs(name: str, attribute: str) -> str:
    return Path(f"/sys/class/net/{name}/{attribute}").read_text().strip()


def link_speed_mbps(name: str) -> int:
    """ethtool's speed (Mbit/s) as the kernel reports it in sysfs (veth: 10000);
    a link that reports none (-1, or EINVAL when down) counts as 10000."""
    try:
        speed = int(sysfs(name, "speed"))
    except (OSError, ValueError):
        return 10_000
    return speed if speed > 0 else 10_000


@dataclass
class Port:
    """One TRex port: its interface and TrexPort's state."""

    index: int
    name: str
    mac: str
    speed_mbps: int
    owner: str = ""
    session_id: int = 0
    handler: str = ""
    service: bool = False
    service_filtered: bool = False
    profiles: dict[str, dict[int, Stream]] = field(default_factory=dict)
    counters: PortCounters = field(default_factory=PortCounters)
    transmitting: set[str] = field(default_factory=set)  # profiles with traffic running

    def profile_state(self, profile_id: str) -> str:
        if profile_id in self.transmitting:
            return "TX"
        return "STREAMS" if self.profiles.get(profile_id) else "IDLE"

    def state(self) -> str:
        """TrexStatelessPort's state: TX if any profile transmits, STREAMS if any has streams."""
        if self.transmitting:
            return "TX"
        return "STREAMS" if any(self.profiles.values()) else "IDLE"

    def flags(self) -> int:
        return int(sysfs(self.name, "flags"), 16)


class TrexStandin:
    """The server: ports, sessions, captures, and the command table."""

    def __init__(self, port_names: list[str], bind: str, sync_port: int, async_port: int):
        self.ports = [Port(n, name, sysfs(name, "address"), link_speed_mbps(name))
                      for n, name in enumerate(port_names)]
        self.dispatcher = rpc.Dispatcher(api_handler=os.urandom(4).hex())
        self.dispatcher.owner_handler = self._owner_handler
        self.zmq = rpc.ZmqServer(bind, sync_port, async_port)
        self.publisher = rpc.Publisher(self.zmq.publish)
        self.io = PortIO(port_names)
        self.pgids = PgidTable(len(self.ports))
        self.engine = TrafficEngine(port_names, [p.speed_mbps * 1e6 for p in self.ports], self.io.deaf)
        self.started = time.time()
        self._register()

    def serve(self, running) -> None:
        """Answer requests until `running()` is false."""
        self.zmq.serve(self.dispatcher.answer, self.tick, running)

    def tick(self) -> None:
        """Between requests: launch gathered starts, take in a run that ended. A failure
        here has no request to answer: it is logged, and the client hears of it as a
        profile error event."""
        starts = self.engine.due()
        if starts:
            try:
                self.engine.launch(starts)
            except Exception as error:  # noqa: BLE001 -- pjgen could not start (build, spec, sockets)
                print(f"TRex stand-in: cannot start the generator: {error}", file=sys.stderr, flush=True)
                self._stop_profiles(starts, EVENT_PROFILE_ERROR)
                return
            for start in starts:
                self.publisher.publish_event(EVENT_PROFILE_STARTED, {"port_id": start.port,
                                                                     "profile_id": start.profile})
        elif self.engine.run is not None and self.engine.run.done():
            try:
                self._end_run(lambda run: run.wait(0), stopped=None)
            except rpc.RpcError as error:
                print(f"TRex stand-in: traffic run failed: {error}", file=sys.stderr, flush=True)

    def _end_run(self, stats_of, stopped: tuple[int, str] | None) -> None:
        """The run's statistics into the counters; its profiles stop transmitting, with
        the events TRex publishes (profile finished, or stopped for the one asked, or a
        profile error if the generator failed: that error is raised on)."""
        run = self.engine.run
        try:
            run, stats = self.engine.finish(stats_of)
        except rpc.RpcError:
            self._stop_profiles(run.starts, EVENT_PROFILE_ERROR)
            raise
        apply_stats(run, stats, [port.counters for port in self.ports], self.pgids.pgids)
        self._stop_profiles(run.starts, EVENT_PROFILE_FINISHED_TX, stopped)

    def _stop_profiles(self, starts: list[Start], event: int, stopped: tuple[int, str] | None = None) -> None:
        for start in starts:
            port = self.ports[start.port]
            port.transmitting.discard(start.profile)
            data = {"port_id": start.port, "profile_id": start.profile}
            if (start.port, start.profile) == stopped:
                self.publisher.publish_event(EVENT_PROFILE_STOPPED, data)
                continue
            self.publisher.publish_event(event, data)
            if not port.transmitting:
                self.publisher.publish_event(EVENT_PORT_JOB_DONE, {"port_id": start.port})

    def close(self) -> None:
        try:
            if self.engine.run is not None:
                self.engine.finish(TrafficRun.stop)
        finally:
            self.io.close()
            self.zmq.close()

    def _register(self) -> None:
        register = self.dispatcher.register
        for name, handler in (("api_sync_v2", self.api_sync_v2), ("get_version", self.get_version),
                              ("ping", self.ping)):
            register(name, handler, needs_api=False)
        for name, handler in (
                ("get_system_info", self.get_system_info), ("get_supported_cmds", self.get_supported_cmds),
                ("get_port_status", self.get_port_status), ("get_port_xstats_names", self.get_port_xstats_names),
                ("get_port_xstats_values", self.get_port_xstats_values), ("get_async_events", self.get_async_events),
                ("publish_now", self.publish_now), ("acquire", self.acquire), ("get_owner", self.get_owner),
                ("get_tpg_status", self.get_tpg_status), ("capture", self.capture),
                ("get_profile_list", self.get_profile_list), ("get_all_streams", self.get_all_streams),
                ("get_global_stats", self.get_global_stats), ("get_port_stats", self.get_port_stats),
                ("get_active_pgids", self.get_active_pgids), ("get_pgid_stats", self.get_pgid_stats),
                ("set_port_attr", self.set_port_attr), ("set_rx_feature", self.set_rx_feature),
                ("push_pkts", self.push_pkts)):
            register(name, handler)
        for name, handler in (("release", self.release), ("service", self.service),
                              ("add_stream", self.add_stream), ("remove_stream", self.remove_stream),
                              ("remove_all_streams", self.remove_all_streams),
                              ("start_traffic", self.start_traffic), ("stop_traffic", self.stop_traffic),
                              ("remove_rx_filters", self.remove_rx_filters)):
            register(name, handler, owned=True)

    def _port(self, params: dict) -> Port:
        """TrexRpcCommand::parse_port()."""
        index = port_id(params)
        if index >= len(self.ports):
            raise execute_error("invalid port id - should be:" + "".join(f" {p.index}" for p in self.ports))
        return self.ports[index]

    def _owner_handler(self, index: int) -> str | None:
        if index >= len(self.ports):
            raise execute_error("invalid port id - should be:" + "".join(f" {p.index}" for p in self.ports))
        port = self.ports[index]
        return port.handler if port.owner else None

    # connection ----------------------------------------------------------------------

    def api_sync_v2(self, params: dict) -> dict:
        """TrexRpcCmdAPISyncV2 / TrexRpcAPIVersion::verify(): same class and major, minor not newer."""
        name = rpc.param_str(params, "name")
        major, minor = rpc.param_int(params, "major"), rpc.param_int(params, "minor")
        if name != API_CLASS:
            raise execute_error(f"RPC configuration mismatch - server RPC configuration: '{API_CLASS}', "
                                f"client RPC configuration: '{name}'")
        if major != API_MAJOR or minor > API_MINOR:
            raise execute_error(f"RPC version mismatch - server RPC version: '{API_MAJOR}.{API_MINOR:02}', "
                                f"client RPC version: '{major}.{minor:02}'")
        return {"api_h": self.dispatcher.api_handler}

    def get_version(self, params: dict) -> dict:
        return {"version": VERSION, "build_date": "", "build_time": "",
                "built_by": "packet-journey TRex stand-in (harness.drivers.trex_standin)", "mode": "STL"}

    def ping(self, params: dict) -> dict:
        return {"ts": time.monotonic()}

    def get_system_info(self, params: dict) -> dict:
        """TrexRpcCmdGetSysInfo, and what the stand-in's generator can do."""
        ports = []
        for port in self.ports:
            ports.append({
                "index": port.index, "driver": "af_packet (TRex stand-in)", "pci_addr": "", "numa": 0,
                "hw_mac": port.mac, "stack": "legacy", "description": f"{port.name} (TRex stand-in)",
                "rx": {"caps": ["flow_stats", "latency", "rx_bytes"], "counters": 1024},
                "is_fc_supported": False, "is_led_supported": False, "is_link_supported": False,
                "is_prom_supported": True, "is_vxlan_supported": False, "is_ieee1588_supported": False,
                "is_virtual": True, "supp_speeds": [port.speed_mbps], "cores": [0]})
        return {"hostname": socket.gethostname(), "uptime": time.strftime("%b %d %Y @ %H:%M:%S",
                                                                          time.localtime(self.started)),
                "dp_core_count": 1, "dp_core_count_per_port": 1, "core_type": "TRex stand-in (Python)",
                "is_multiqueue_mode": False, "advanced_per_stream_stats": True,
                "port_count": len(self.ports), "ports": ports,
                "packet_journey_standin": self.standin_info()}

    def standin_info(self) -> dict:
        """What the harness needs to state the stand-in's limits honestly."""
        return {"engine": "pjgen", "generator": generator.CAPS.generator, "max_pps": generator.CAPS.max_pps,
                "max_bps_L1": generator.CAPS.max_bps_L1, "ports": [port.name for port in self.ports],
                "max_frame_cycle": vm.MAX_CYCLE}

    def get_supported_cmds(self, params: dict) -> list[str]:
        return sorted(self.dispatcher.commands)

    def get_async_events(self, params: dict) -> dict:
        """TrexRpcCmdGetAsyncEvents: the session's queued events."""
        session_id = rpc.param_int(params, "session_id", high=0xFFFFFFFF)
        return {"data": self.publisher.take_events(session_id)}

    def publish_now(self, params: dict) -> dict:
        """TrexRpcPublishNow: the async barrier; interactive TRex publishes the trigger."""
        rpc.param_int(params, "key", high=0xFFFFFFFF)
        rpc.param_bool(params, "baseline")
        self.publisher.trigger()
        return {}

    # ports ---------------------------------------------------------------------------

    def get_port_status(self, params: dict) -> dict:
        """TrexRpcCmdGetPortStatus: TRexPortAttr::to_json() and the stack's attr_to_json()."""
        port = self._port(params)
        flags = port.flags()
        status = {
            "owner": port.owner, "state": port.state(), "service": port.service,
            "service_filtered": port.service_filtered, "profile_count": len(port.profiles),
            "max_stream_id": max((sid for streams in port.profiles.values() for sid in streams), default=0),
            "attr": {
                "promiscuous": {"enabled": bool(flags & IFF_PROMISC)},
                "multicast": {"enabled": bool(flags & IFF_ALLMULTI)},
                "link": {"up": sysfs(port.name, "operstate") == "up"},
                "speed": port.speed_mbps / 1000.0, "rx_filter_mode": "hw", "vxlan_fs": [], "fc": {"mode": 0},
                "layer_cfg": {"ether": {"src": port.mac, "dst": ZERO_MAC, "state": "unconfigured"},
                              "ipv4": {"state": "none"}, "ipv6": {"enabled": False}},
                "vlan": {"tags": []}},
            "rx_info": {"latency": {"is_active": False}, "queue": {"is_active": False},
                        "stack": {"is_active": False}, "grat_arp": {"is_active": False},
                        "capture_port": {"is_active": False}}}
        profile_id = params.get("profile_id")
        if profile_id is not None:
            status["state_profile"] = {pid: port.profile_state(pid) for pid in port.profiles
                                       if profile_id in (ALL_PROFILE_ID, pid)}
        return status

    def get_port_xstats_names(self, params: dict) -> dict:
        """The kernel's interface statistics stand for DPDK's xstats."""
        port = self._port(params)
        return {"xstats_names": sorted(os.listdir(f"/sys/class/net/{port.name}/statistics"))}

    def get_port_xstats_values(self, params: dict) -> dict:
        port = self._port(params)
        names = sorted(os.listdir(f"/sys/class/net/{port.name}/statistics"))
        return {"xstats_values": [int(sysfs(port.name, f"statistics/{name}")) for name in names]}

    def set_port_attr(self, params: dict) -> dict:
        """TrexRpcCmdSetPortAttr: promiscuous and multicast are the interface's flags."""
        port = self._port(params)
        attr = rpc.param_dict(params, "attr")
        for name, value in attr.items():
            if name not in ("promiscuous", "multicast"):
                raise execute_error(f"Error applying {name}: operation is not supported for this NIC.")
            enabled = rpc.param_bool(value, "enabled")
            flag = "promisc" if name == "promiscuous" else "allmulticast"
            subprocess.run(["ip", "link", "set", "dev", port.name, flag, "on" if enabled else "off"],
                           check=True, capture_output=True)
        return {}

    def set_rx_feature(self, params: dict) -> dict:
        """TrexRpcCmdSetRxFeature: the stand-in has no RX queue or server feature to turn on."""
        self._port(params)
        feature = rpc.param_choice(params, "type", ("queue", "server", "capwap_proxy"))
        if rpc.param_bool(params, "enabled"):
            raise execute_error(f"the TRex stand-in does not implement the RX feature '{feature}'")
        return {}

    def get_tpg_status(self, params: dict) -> dict:
        """TrexRpcCmdGetTaggedPktGroupStatus: the stand-in has no tagged packet groups."""
        if "port_id" in params:
            self._port(params)
        return {"enabled": False, "data": {"username": "-", "acquired_ports": [], "rx_ports": [],
                                           "num_tpgids": 0, "num_tags": 0}}

    # statistics ----------------------------------------------------------------------

    def get_global_stats(self, params: dict) -> dict:
        return global_stats([port.counters for port in self.ports])

    def get_port_stats(self, params: dict) -> dict:
        return self._port(params).counters.to_json()

    def get_active_pgids(self, params: dict) -> dict:
        return self.pgids.active()

    def get_pgid_stats(self, params: dict) -> dict:
        pgids = rpc.param_list(params, "pgids")
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pgids):
            raise execute_error(f"pgids must be unsigned integers, not {pgids!r}")
        return self.pgids.to_json(pgids)

    # ownership -----------------------------------------------------------------------

    def acquire(self, params: dict) -> str:
        """TrexRpcCmdAcquire / TrexPort::acquire()."""
        port = self._port(params)
        user = rpc.param_str(params, "user")
        force = rpc.param_bool(params, "force")
        session_id = rpc.param_int(params, "session_id", high=0xFFFFFFFF)
        if port.owner and not force:
            if port.owner != user:
                raise execute_error(f"port is already taken by '{port.owner}'")
            if port.session_id != session_id:
                raise execute_error(f"port is already owned by another session of '{user}'")
        port.owner, port.session_id, port.handler = user, session_id, os.urandom(4).hex()
        self.publisher.add_session(session_id)
        self.publisher.publish_event(EVENT_PORT_ACQUIRED, {
            "port_id": port.index, "who": user, "session_id": session_id, "force": force})
        return port.handler

    def release(self, params: dict) -> dict:
        """TrexRpcCmdRelease / TrexPort::release()."""
        port = self._port(params)
        if port.transmitting:
            raise execute_error("cannot release a port during active traffic")
        data = {"port_id": port.index, "who": port.owner, "session_id": port.session_id}
        port.owner, port.session_id, port.handler = "", 0, ""
        self.publisher.publish_event(EVENT_PORT_RELEASED, data)
        return {}

    def get_owner(self, params: dict) -> dict:
        return {"owner": self._port(params).owner}

    def service(self, params: dict) -> dict:
        """TrexRpcCmdSetServiceMode."""
        port = self._port(params)
        enabled = rpc.param_bool(params, "enabled")
        filtered = rpc.param_bool(params, "filtered", False)
        if filtered:
            raise execute_error("the TRex stand-in does not implement filtered service mode")
        if port.transmitting:
            raise execute_error("unable to set service mode - please stop traffic first")
        port.service = enabled
        return {}

    # streams (the engine adds the rest) -----------------------------------------------

    def get_profile_list(self, params: dict) -> list[str]:
        return list(self._port(params).profiles)

    def get_all_streams(self, params: dict) -> dict:
        """TrexRpcCmdGetAllStreams: by profile for "*", else the profile's streams."""
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        if profile_id == ALL_PROFILE_ID:
            return {"profiles": {pid: {str(sid): stream.json for sid, stream in streams.items()}
                                 for pid, streams in port.profiles.items()}}
        return {"streams": {str(sid): stream.json for sid, stream in port.profiles.get(profile_id, {}).items()}}

    def add_stream(self, params: dict) -> dict:
        """TrexRpcCmdAddStream: compiled now, so a VM the stand-in cannot run is refused here."""
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        stream_id = rpc.param_int(params, "stream_id", high=0xFFFFFFFF)
        if stream_id in port.profiles.get(profile_id, {}):
            raise execute_error(f"stream {stream_id} already exists in profile_id({profile_id})")
        stream = compile_stream(port.index, port.mac, stream_id, rpc.param_dict(params, "stream"))
        if stream.pg_id is not None:
            users = [s for s in self._streams() if s.pg_id == stream.pg_id]
            if any(s.latency != stream.latency for s in users):
                raise execute_error(f"pg_id {stream.pg_id} is used by a stream of another flow stats type")
            if not users:
                self.pgids.register(stream.pg_id, stream.latency)
        port.profiles.setdefault(profile_id, {})[stream_id] = stream
        return {}

    def _streams(self):
        return (s for port in self.ports for streams in port.profiles.values() for s in streams.values())

    def _writeable(self, port: Port, profile_id: str) -> None:
        if profile_id in port.transmitting or port.index in self.engine.pending_ports():
            raise execute_error(f"port {port.index} profile {profile_id} is active - please stop it first")

    def _drop(self, port: Port, profile_id: str, stream_ids: list[int]) -> None:
        streams = port.profiles.get(profile_id, {})
        for stream_id in stream_ids:
            stream = streams.pop(stream_id)
            if stream.pg_id is not None and not any(s.pg_id == stream.pg_id for s in self._streams()):
                self.pgids.unregister(stream.pg_id)
        if not streams:
            port.profiles.pop(profile_id, None)

    def remove_stream(self, params: dict) -> dict:
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        stream_id = rpc.param_int(params, "stream_id", high=0xFFFFFFFF)
        if stream_id not in port.profiles.get(profile_id, {}):
            raise execute_error(f"stream {stream_id} does not exists in profile_id({profile_id})")
        self._writeable(port, profile_id)
        self._drop(port, profile_id, [stream_id])
        return {}

    def remove_all_streams(self, params: dict) -> dict:
        """TrexRpcCmdRemoveAllStreams: of the profile, or of every profile for "*"."""
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        for pid in list(port.profiles) if profile_id == ALL_PROFILE_ID else [profile_id]:
            self._writeable(port, pid)
            self._drop(port, pid, list(port.profiles.get(pid, {})))
        return {}

    # traffic -------------------------------------------------------------------------

    def start_traffic(self, params: dict) -> dict:
        """TrexRpcCmdStartTraffic: the port's profile runs, with the ports started with it."""
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        duration = rpc.param_float(params, "duration")
        force = rpc.param_bool(params, "force")
        streams = [stream for stream in port.profiles.get(profile_id, {}).values() if stream.sends]
        if not streams:
            raise execute_error("unable to start traffic - no streams attached to port")
        if profile_id in port.transmitting:
            raise execute_error(f"port {port.index} profile {profile_id} is already transmitting")
        start_at = rpc.param_float(params, "start_at_ts", 0.0)
        if start_at and start_at < time.monotonic() + 0.1:
            raise execute_error("start_at_ts, if defined, should be at least 100ms from now_sec()")
        factor = multiplier_factor(streams, rpc.param_dict(params, "mul"), port.speed_mbps * 1e6, force)
        self.engine.start(Start(port.index, profile_id, streams, factor, duration, start_at))
        port.transmitting.add(profile_id)
        return {"multiplier": factor, "ts": time.time()}

    def stop_traffic(self, params: dict) -> dict:
        """TrexRpcCmdStopTraffic: the run the port is in ends now (the whole run: one pjgen)."""
        port = self._port(params)
        profile_id = params.get("profile_id", DEFAULT_PROFILE_ID)
        profiles = list(port.transmitting) if profile_id == ALL_PROFILE_ID else [profile_id]
        for pid in profiles:
            if pid not in port.transmitting:
                continue
            run = self.engine.run
            if run is not None and any((s.port, s.profile) == (port.index, pid) for s in run.starts):
                self._end_run(TrafficRun.stop, stopped=(port.index, pid))
            else:
                self.engine.cancel_pending(port.index)
                port.transmitting.discard(pid)
                self.publisher.publish_event(EVENT_PROFILE_STOPPED, {"port_id": port.index, "profile_id": pid})
        return {}

    def remove_rx_filters(self, params: dict) -> dict:
        """TrexRpcCmdRemoveRXFilters: the stand-in counts by the payload tag, it has no filters."""
        port = self._port(params)
        self._writeable(port, params.get("profile_id", DEFAULT_PROFILE_ID))
        return {}

    # service mode: push and capture ----------------------------------------------------

    def push_pkts(self, params: dict) -> dict:
        """TrexRpcCmdTXPkts: the frames leave the port in order, `ipg_usec` apart; a frame
        that asks for the port's MACs gets them (the port's own as source; no destination
        is configured on a stand-in port, so it keeps its own)."""
        port = self._port(params)
        ipg_usec = rpc.param_int(params, "ipg_usec", 0, high=0xFFFFFFFF)
        packets = rpc.param_list(params, "pkts")
        if len(packets) * ipg_usec / 1e6 > 1:
            raise parse_error("TX batch total transmit time exceeds the limit of 1 second")
        frames = []
        for packet in packets:
            rpc.param_bool(packet, "use_port_dst_mac")
            use_src = rpc.param_bool(packet, "use_port_src_mac")
            frame = decode_binary(packet)
            if not MIN_PKT_SIZE <= len(frame) <= MAX_PKT_SIZE:
                raise execute_error(f"Bad packet size provided: {len(frame)}. Should be between "
                                    f"{MIN_PKT_SIZE} and {MAX_PKT_SIZE}")
            if use_src:
                frame = bytearray(frame)
                EthernetFrame(frame).src = mac_to_bytes(port.mac)
            frames.append(bytes(frame))
        now = time.time()
        sent = self.io.push(port.index, frames, ipg_usec)
        port.counters.opackets += sent
        port.counters.obytes += sum(len(frame) for frame in frames)
        return {"sent": sent, "ts": now}

    def capture(self, params: dict) -> object:
        """TrexRpcCmdCapture: start, stop, fetch, status, remove."""
        command = rpc.param_choice(params, "command", ("start", "stop", "fetch", "status", "remove"))
        try:
            if command == "start":
                return self._capture_start(params)
            if command == "status":
                return self.io.status()
            capture_id = rpc.param_int(params, "capture_id", high=0xFFFFFFFF)
            if command == "stop":
                return {"pkt_count": self.io.stop(capture_id), "endpoint": ""}
            if command == "remove":
                self.io.remove(capture_id)
                return {}
            pkt_limit = rpc.param_int(params, "pkt_limit", high=0xFFFFFFFF)
            snaplen = rpc.param_int(params, "snaplen", 0, high=0xFFFF)
            frames, pending, start_ts = self.io.fetch(capture_id, pkt_limit)
            return {"pending": pending, "start_ts": start_ts, "pkts": [f.to_json(snaplen) for f in frames]}
        except CaptureError as error:
            raise execute_error(str(error)) from None

    def _capture_start(self, params: dict) -> dict:
        limit = rpc.param_int(params, "limit", high=0xFFFFFFFF)
        mode = rpc.param_choice(params, "mode", ("fixed", "cyclic"))
        if rpc.param_str(params, "filter", ""):
            raise execute_error("the TRex stand-in does not compile BPF filters: capture without one")
        if rpc.param_str(params, "endpoint", ""):
            raise execute_error("the TRex stand-in does not write captures to an endpoint")
        tx, rx = rpc.param_list(params, "tx"), rpc.param_list(params, "rx")
        for index in tx + rx:
            self._port({"port_id": index})
        capture = self.io.start(tx, rx, limit, mode == "cyclic")
        return {"capture_id": capture.id, "start_ts": capture.start_ts}


def decode_binary(packet: dict) -> bytes:
    try:
        return base64.b64decode(rpc.param_str(packet, "binary"), validate=True)
    except binascii.Error as error:
        raise parse_error(f"'binary' is not base64: {error}") from None
