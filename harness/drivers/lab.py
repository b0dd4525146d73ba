"""`--target=dut --lab=LAB.yaml`: the Target interface over a lab station, a remote
Linux DUT reached over SSH whose ports are cabled to a TRex traffic generator.

A `Station` is what one pytest process holds for its whole session (one per
pytest-xdist worker, `labfile.claim_station`): the SSH connection to the DUT
(`remote.SshHost`), what the harness changed there and how to undo it
(`dutstate.DutState`: the DUT's interfaces renamed p0..p2 with the harness's MACs
for the session, snapshot and restore around every test), the DUT agent serving
the observers of the netns lab on the DUT itself (`agent`: nftrace, kfree_skb drop
reasons, bpf run counts, conntrack, sockets, eBPF event readers, load counters),
and the official TRex client in a process of its own (`trex.TrexClient`).

`LabTarget` is one test's view of a station. Configuration commands run over SSH
as the operator typed them (`shlex.join`, after the allow-list check); a local
file a command names (an eBPF object) is put first into the agent's session
directory on the DUT (removed when the agent exits) and the command names that copy. Frames go out through TRex ports in service mode and come back
through TRex's capture. Line-rate runs are TRex streams. At close the DUT is
restored to the snapshot taken before the test; what could not be restored fails
the test's teardown with the commands to do it by hand.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from socket import AF_INET, AF_INET6

from harness.drivers.agent import AGENT_SESSION_PREFIX, ProcessChannel, RemoteDutSide, agent_argv, agent_code
from harness.drivers.dut import SideTarget
from harness.drivers.dutside import check_command
from harness.drivers.dutstate import DutState, Unrestored, identity
from harness.drivers.remote import SshHost
from harness.drivers.trex import TrexClient
from harness.journey import Drop, Journey
from harness.labfile import Station as StationConfig
from harness.mockkernel.wire.mld import is_mld_report
from harness.packets import describe
from harness.target import (
    AppSocket,
    CommandError,
    Departed,
    Port,
    StreamSocket,
    Target,
    TargetError,
    TargetUnavailable,
)
from harness.traffic import Profile, Result, TrafficCaps

# Local files a command may name, put on the DUT before it runs: eBPF objects.
UPLOADED_SUFFIXES = (".o",)


# What a dry run claims to have, so that no test skips before its commands are recorded:
# everything the netns lab's DUT side can observe.
DRY_RUN_CAPABILITIES = frozenset({
    "kernel", "frames", "sockets", "drop_reasons", "nftables", "nftrace", "xdp", "tc", "bpf_events",
    "bpftool", "journey.xdp", "journey.tc", "conntrack"})


# What the agent observes of a traffic run on the DUT (drop reasons, qdisc, device,
# softnet and nft counters), added to what TRex measures.
DUT_OBSERVES = frozenset({"losses", "qdisc", "softnet", "nft"})


class RestoreFailed(TargetError):
    """The DUT could not be put back as it was; the message lists what, and how by hand."""

    def __init__(self, station: str, unrestored: Sequence[Unrestored]):
        lines = [f"  {item.what}: run `{item.command}`" for item in unrestored]
        super().__init__(f"station {station}: the DUT was not fully restored:\n" + "\n".join(lines))


class Station:
    """One lab station held for a session: SSH, the DUT's state, the agent, TRex."""

    def __init__(self, config: StationConfig, lab_file: Path | None = None) -> None:
        self.config = config
        self.name = config.name
        self.host: SshHost | None = None
        self.state: DutState | None = None
        self.agent = None
        self.trex: TrexClient | None = None
        try:
            self.host = SshHost(config.dut, config.timeouts)
            self.state = DutState(self.host, config.dut.interfaces, config.dut.allow, config.dut.management,
                                  lab_file)
            self.state.prepare()
            self._start_agent()
            self.trex = TrexClient(config.trex, config.timeouts)
            self.identity = {"station": self.name, "dut": identity(self.host, config.dut.interfaces),
                             "trex": self.trex.identity()}
        except BaseException:
            self.close()
            raise

    def _start_agent(self) -> None:
        if not self.host.connected:
            self.host.reconnect()
        self.agent = self.host.open_process(agent_argv(self.config.dut.python))
        self.channel = ProcessChannel(self.agent)
        self.channel.write(agent_code())
        self._uploaded: dict[str, str] = {}  # the agent's files go with it

    def open_side(self) -> RemoteDutSide:
        """A test's DutSide in the DUT agent; a new agent when the last one has gone
        (its SSH connection dropped: it moved the ports back as it exited), and a new
        TRex client when the last one's process died or hung in an earlier test."""
        if self.trex.ended is not None:
            self.trex.close()
            self.trex = TrexClient(self.config.trex, self.config.timeouts)
        try:
            return self._side()
        except TargetUnavailable:  # the agent's channel is gone
            self.agent.close()
            self._start_agent()
            return self._side()

    def _stop_agent(self) -> None:
        """End of input to the agent, and its exit awaited: it moves the ports home
        and deletes its namespace as it exits, before the DUT's state is restored."""
        try:
            self.agent.stdin.close()
            self.agent.wait()
        except TargetUnavailable:  # the connection is gone, and the agent with it
            pass
        finally:
            self.agent.close()

    def _side(self) -> RemoteDutSide:
        return RemoteDutSide(self.channel, where=f"{self.name} ({self.host.address})",
                             isolate=self.config.dut.isolation == "netns")

    def upload(self, side: RemoteDutSide, local: str) -> str:
        """The DUT's copy of local file `local`, put once per content (and agent) into
        the agent's session directory through `side`, under a name carrying a hash of
        its content."""
        path = Path(local)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._uploaded:
            self._uploaded[digest] = side.put_file(f"{path.stem}-{digest[:16]}{path.suffix}", data)
        return self._uploaded[digest]

    def close(self) -> list[Unrestored]:
        """Release the station: TRex, the agent, the DUT's original names and settings."""
        unrestored: list[Unrestored] = []
        try:
            if self.trex is not None:
                self.trex.close()
            if self.agent is not None:
                self._stop_agent()
        finally:
            try:
                if self.state is not None:
                    unrestored = self.state.release()
            finally:
                if self.host is not None:
                    self.host.close()
        return unrestored


class LabTarget(SideTarget):
    """One test on a lab station (module doc)."""

    name = "lab"

    def __init__(self, station: Station, positive_timeout: float = 5.0, negative_timeout: float = 0.5) -> None:
        super().__init__()
        self.station = station
        self.positive_timeout = positive_timeout
        self.negative_timeout = negative_timeout
        station.state.snapshot()
        self.side = station.open_side()
        # each command runs where the ports are: the test's namespace, or the DUT's own
        self._where = ["ip", "netns", "exec", self.side.netns] if self.side.netns else []
        self.capabilities = frozenset(self.side.capabilities)

    # configuration -----------------------------------------------------------
    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        argv = self.argv(cmd)
        check_command(argv)
        state = self.station.state
        state.check(argv, stdin)
        argv = [self._remote_path(arg) for arg in argv]
        state.before_command(argv, stdin, self.side.netns)
        run = self.side.before_command(argv)
        output = None
        try:
            # procps 4.0.2 exits 0 after a refused write: stderr says it
            output = self.station.host.run([*self._where, *run], stdin, stderr_fails=argv[0] == "sysctl")
        finally:  # the observers' hooks close around a failed command too (nftrace's table)
            output = self.side.after_command(argv, output)
        return output

    def _remote_path(self, arg: str) -> str:
        if arg.endswith(UPLOADED_SUFFIXES) and os.path.isabs(arg) and os.path.isfile(arg):
            return self.station.upload(self.side, arg)
        return arg

    # frames ------------------------------------------------------------------
    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        self.side.before_send(port, frames)
        self.station.trex.push(port.name, frames)

    def _receive(self, timeout: float) -> dict[str, Departed]:
        """TRex's capture, each frame stamped with the time the harness fetched it: the
        capture's own timestamps are on the TRex server's clock, not this one's. The
        MLD reports a DUT with IPv6 on sends by itself are left out, as the netns
        lab's capture leaves them out."""
        fetched = self.station.trex.received(timeout)
        now = self.now()
        tested = {port: [frame for frame in frames if not is_mld_report(frame)] for port, frames in fetched.items()}
        return {port: Departed(frames, [now] * len(frames)) for port, frames in tested.items()}

    # traffic at rate -----------------------------------------------------------
    def traffic_caps(self) -> TrafficCaps:
        """TRex's offer; what the DUT side observes of a run, as on the netns lab."""
        caps = self.station.trex.caps()
        return dataclasses.replace(caps, observes=caps.observes | DUT_OBSERVES)

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        """TRex streams; the DUT is untraced meanwhile and its drops counted in the
        kernel by reason, as on the netns lab."""
        profile.check_duration(duration)
        self.side.begin_load_run()
        try:
            result = self.station.trex.run(profile, duration, held=self.side.qdisc_backlog)
        finally:
            observed = self.side.end_load_run()
        result.target = self.name
        result.losses, notes = observed.losses()
        result.notes += notes
        self.traffic_results.append(result)
        return result

    def close(self) -> None:
        """Close this test's observers, then restore the DUT to its snapshot."""
        try:
            self.side.close()
        finally:
            unrestored = self.station.state.restore()
            if unrestored:
                raise RestoreFailed(self.station.name, unrestored)


class StationBroken(TargetUnavailable):
    """The station failed to come up earlier in this session: later tests fail at once."""


class DryRunTarget(Target):
    """`--lab-dry-run`: a station's target that connects to nothing and changes
    nothing. It records each command the test would run on the DUT (after the
    allow-list check, which it applies), each frame it would push through TRex and
    each stream it would add; commands answer nothing, so a test that reads an
    output or waits for a frame stops there, and the recording says so."""

    name = "lab"
    dry_run = True

    def __init__(self, config: StationConfig, session_start: bool = False) -> None:
        """`session_start`: the station's first test, whose recording begins with what
        the session does before it."""
        super().__init__()
        self.config = config
        self.capabilities = DRY_RUN_CAPABILITIES
        self._allow = DutState.checks_only(config.dut)
        self._trex_port = {dut_port: trex_port for trex_port, dut_port in config.trex.ports.items()}
        self._lines: list[str] = self._session_start() if session_start else []

    def _session_start(self) -> list[str]:
        dut, trex = self.config.dut, self.config.trex
        ssh = f"  ssh {dut.user}@{dut.host}:{dut.port}"
        lines = [f"{ssh}: connect (host key checked against {dut.known_hosts}); read and journal the "
                 "state of the lab interfaces, then:"]
        for argv, stdin in self._allow.prepare_commands():
            lines.append(f"{ssh}: {shlex.join(argv)}")
            lines += [f"      | {line}" for line in (stdin or "").splitlines()]
        lines.append(f"{ssh}: run the agent, `{dut.python} -I -c <bootstrap>`, its code (the harness as a zip) "
                     f"on its stdin, kept in {AGENT_SESSION_PREFIX}* in the DUT's temporary directory while it runs")
        lines.append(f"  TRex {trex.host}:{trex.sync_port}: connect, acquire ports {sorted(trex.ports)}, "
                     "service mode, capture what they receive")
        if dut.isolation == "netns":
            lines.append("  each test: the agent moves p0..p2 into a fresh namespace, and back after the test")
        lines.append("  each test: snapshot before, restore after")
        return lines

    def recording(self) -> str:
        return "\n".join(self._lines) or "  (nothing)"

    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        argv = self.argv(cmd)
        dut = self.config.dut
        try:
            self._allow.check(argv, stdin)
        except CommandError as exc:
            self._lines.append(f"  refused: {exc}")
            raise
        where = " (in the test's namespace)" if dut.isolation == "netns" else ""
        self._lines.append(f"  ssh {dut.user}@{dut.host}:{dut.port}{where}: {shlex.join(argv)}")
        self._lines += [f"      | {line}" for line in (stdin or "").splitlines()]
        return ""

    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        trex = self.config.trex
        for frame in frames:
            self._lines.append(f"  TRex {trex.host}:{trex.sync_port} port {self._trex_port[port.name]} -> "
                               f"{port.name}: push {describe(frame)}")

    def _receive(self, timeout: float) -> dict[str, Departed]:
        return {}

    def now(self) -> float:
        return time.monotonic()

    def next_frame(self, port: str | Port, until: float) -> tuple[bytes, float] | None:
        self._lines.append(f"  wait for the next frame out of {self.port(port).name}")
        raise TargetError("dry run: no frame leaves the DUT")

    def socket(self, proto: str, bind: tuple[str, int] | None = None, rcvbuf: int | None = None,
               sndbuf: int | None = None, family: int = AF_INET) -> AppSocket | StreamSocket:
        bound = f" bound to {bind[0]}:{bind[1]}" if bind is not None else ""
        self._lines.append(f"  agent: open a {proto}{'6' if family == AF_INET6 else ''} socket{bound}")
        raise TargetError("dry run: no application runs on the DUT")

    def journeys(self) -> list[Journey]:
        return []

    def drops(self) -> list[Drop]:
        return []

    def traffic_caps(self) -> TrafficCaps:
        return TrafficCaps(generator="TRex (dry run)", max_pps=float("inf"), max_bps_L1=float("inf"),
                           observes=frozenset({"latency", "losses"}))

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        trex = self.config.trex
        client = TrexClient(trex, self.config.timeouts, connect=False)
        try:
            streams = client.streams(profile, duration)
        finally:
            client.close()
        for stream in streams:
            self._lines.append(f"  TRex {trex.host}:{trex.sync_port} add_stream {json.dumps(stream, sort_keys=True)}")
        self._lines.append(f"  TRex {trex.host}:{trex.sync_port} start_traffic for {duration} s")
        raise TargetError("dry run: no traffic was sent")

    def wait(self, seconds: float) -> None:
        self._lines.append(f"  wait {seconds} s")


__all__ = ["DryRunTarget", "LabTarget", "RestoreFailed", "Station", "StationBroken"]
