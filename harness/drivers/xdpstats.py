"""XDP and TC ingress hops of the real kernel, from program run counts and the
device's counters.

The kernel does not trace XDP verdicts per packet; what it counts is enough when
frames arrive one at a time:

- run statistics: `bpftool prog show id N` gives `run_cnt` (and run_time_ns) of
  a program while statistics are enabled. The lab enables them with the bpf()
  command BPF_ENABLE_STATS (BPF_STATS_RUN_TIME), not with the global sysctl
  `kernel.bpf_stats_enabled`: the sysctl is host state every process shares
  (pytest-xdist workers' labs would switch it off under each other when restoring
  it, and a killed run would leave it on), while the command's fd keeps
  statistics on exactly as long as the lab holds it, counted per holder, and the
  kernel drops it when the process dies. The sysctl reads 0 meanwhile.
- veth's per-queue XDP counters (`ethtool -S pN`, veth_get_ethtool_stats()):
  rx_queue_Q_xdp_packets (frames through the XDP path), _xdp_drops (XDP_DROP and
  XDP_ABORTED alike: veth_xdp_rcv_skb() counts both there), _xdp_tx, _xdp_redirect,
  and tx_queue_Q_xdp_xmit on the port frames were redirected or sent out of.

Before each send the lab snapshots them for every DUT port with a program; the
difference up to the next snapshot (or up to `journeys()`) belongs to that send.
With one frame per send the verdict is exact: DROP, TX, REDIRECT (to the port
whose xdp_xmit rose) or PASS. Several frames in one send get one verdict if they
all got the same; otherwise each gets a hop without a verdict whose summary gives
the counts. What the lab cannot tell: ABORTED from DROP (both are drops; the mock
says ABORTED), and a frame that was still in flight when the next snapshot was
taken (veth runs XDP in the softirq of the sending call, so this needs a full
backlog). The hops are `Hop("XDP", port, verdict, summary)`, as on the mock,
followed for TX and REDIRECT by `Hop("NIC_TX", egress port, "XMIT")`.

TC ingress the same way: the run counts of the clsact ingress programs of the
port a frame came in on (`bpftool net show` lists them), and the clsact qdisc's
`drops` (`tc -s -j qdisc show`: sch_handle_ingress() counts a TC_ACT_SHOT
there). A frame the programs ran on and the qdisc dropped gets
`Hop("TC_INGRESS", port, "SHOT")`; one they ran on and let through a hop without
a verdict: OK, PIPE, STOLEN and REDIRECT leave the same counters. TC egress is
not attributed (its packet is no longer the frame that was sent).
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field

from harness.drivers.bpf_events import bpf
from harness.drivers.kfree_skb import KfreeSkbEvent
from harness.journey import Hop, Journey
from harness.target import PORTS, Port

BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0  # bpf(2) command and stats type
COUNTER = re.compile(r"^\s*(rx|tx)_queue_\d+_(xdp_\w+): (\d+)$")
ETH_HLEN = 14


def enable_run_stats() -> int:
    """An fd that keeps BPF run statistics on until it is closed (kernel 5.8+)."""
    return bpf(BPF_ENABLE_STATS, struct.pack("<I", BPF_STATS_RUN_TIME),
               "BPF_ENABLE_STATS (needs CAP_SYS_ADMIN and Linux 5.8+)")


@dataclass
class PortCounters:
    """One DUT port at one moment: its XDP program (id, run_cnt), veth's counters,
    its clsact ingress programs' run counts and the clsact qdisc's drops."""

    prog_id: int | None = None
    run_cnt: int = 0
    counters: dict[str, int] = field(default_factory=dict)  # "rx_xdp_drops", "tx_xdp_xmit", ...
    tc_ingress_runs: dict[int, int] = field(default_factory=dict)  # program id -> run_cnt
    clsact_drops: int = 0

    def tc_ingress_ran(self, later: PortCounters) -> int:
        """Runs of the ingress programs attached at both moments."""
        return sum(later.tc_ingress_runs[prog] - runs for prog, runs in self.tc_ingress_runs.items()
                   if prog in later.tc_ingress_runs)

    def delta(self, later: PortCounters, name: str) -> int:
        return later.counters.get(name, 0) - self.counters.get(name, 0)


@dataclass
class Send:
    port: Port
    frames: list[bytes]
    before: dict[str, PortCounters]


def frame_summary(frame: bytes) -> str:
    """The packet line the lab's journeys give an IPv4 frame (kfree_skb.py's format)."""
    if len(frame) < ETH_HLEN + 20 or frame[12:14] != b"\x08\x00":
        ethertype = int.from_bytes(frame[12:14], "big") if len(frame) >= ETH_HLEN else 0
        return KfreeSkbEvent(0, 0, "", ethertype, len(frame), "", "", 0, 0, 0, 0, 0).summary()
    ip = frame[ETH_HLEN:]
    tot_len, ident, frag_off, ttl, proto = struct.unpack_from("!2xHHHBB", ip)
    saddr, daddr = (".".join(map(str, ip[i:i + 4])) for i in (12, 16))
    return KfreeSkbEvent(0, 0, "", 0x0800, tot_len, saddr, daddr, proto, ident, ttl, tot_len, frag_off).summary()


class BpfRunObserver:
    """XDP and TC ingress hops of the frames the lab sends (module doc)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self._stats_fd = enable_run_stats()
        self._sends: list[Send] = []
        self.active = False  # set once a test attaches XDP or TC: until then nothing is read

    def snapshot(self) -> dict[str, PortCounters]:
        attached = json.loads(self.lab.run(self.lab.dut, ["bpftool", "-j", "net", "show"]))[0]
        progs = {entry["devname"]: entry["id"] for entry in attached["xdp"]}
        tc_ingress = {}
        for entry in attached["tc"]:
            if entry["kind"] == "clsact/ingress":
                tc_ingress.setdefault(entry["devname"], []).append(entry["id"])
        run_cnt = self._run_counts([*progs.values(), *(i for ids in tc_ingress.values() for i in ids)])
        out = {}
        for port in PORTS:
            state = PortCounters()
            prog_id = progs.get(port.name)
            if prog_id is not None:
                state.prog_id = prog_id
                state.run_cnt = run_cnt.get(prog_id, 0)
            if port.name in tc_ingress:
                state.tc_ingress_runs = {prog: run_cnt.get(prog, 0) for prog in tc_ingress[port.name]}
                qdiscs = json.loads(self.lab.run(self.lab.dut, ["tc", "-s", "-j", "qdisc", "show", "dev", port.name]))
                state.clsact_drops = sum(q.get("drops", 0) for q in qdiscs if q["kind"] == "clsact")
            for line in self.lab.run(self.lab.dut, ["ethtool", "-S", port.name]).splitlines():
                match = COUNTER.match(line)
                if match:
                    name = f"{match.group(1)}_{match.group(2)}"
                    state.counters[name] = state.counters.get(name, 0) + int(match.group(3))
            out[port.name] = state
        return out

    def _run_counts(self, prog_ids: list[int]) -> dict[int, int]:
        """run_cnt of each program, from one `bpftool prog show id N` per program."""
        counts = {}
        for prog_id in prog_ids:
            info = json.loads(self.lab.run(self.lab.dut, ["bpftool", "-j", "prog", "show", "id", str(prog_id)]))
            counts[prog_id] = info.get("run_cnt", 0)
        return counts

    def before_send(self, port: Port, frames: list[bytes]) -> None:
        if self.active:
            self._sends.append(Send(port, list(frames), self.snapshot()))

    def hops(self) -> list[tuple[bytes, list[Hop]]]:
        """(frame, its XDP and TC ingress hops) for every frame sent since the last clear()."""
        if not self._sends:
            return []
        snapshots = [send.before for send in self._sends] + [self.snapshot()]
        out = []
        for send, after in zip(self._sends, snapshots[1:]):
            hops = self._verdicts(send, after)
            out += [(frame, hop) for frame, hop in zip(send.frames, hops) if hop]
        return out

    def _verdicts(self, send: Send, after: dict[str, PortCounters]) -> list[list[Hop]]:
        """Each frame's XDP hops, then its TC ingress hop."""
        xdp = self._xdp_verdicts(send, after)
        tc = self._tc_ingress_verdict(send, after)
        return [hops + [tc] if tc and (not hops or hops[0].verdict in ("PASS", "")) else hops for hops in xdp]

    def _tc_ingress_verdict(self, send: Send, after: dict[str, PortCounters]) -> Hop | None:
        name = send.port.name
        before, now = send.before[name], after[name]
        ran = before.tc_ingress_ran(now)
        if not ran:
            return None
        n, shot = len(send.frames), now.clsact_drops - before.clsact_drops
        if shot == n:
            return Hop("TC_INGRESS", name, "SHOT")
        if not shot:
            return Hop("TC_INGRESS", name, "", "ran, not dropped (OK, PIPE, STOLEN and REDIRECT count alike)")
        return Hop("TC_INGRESS", name, "", f"{n} frames in one send: {shot} dropped (the counters do not say which)")

    def _xdp_verdicts(self, send: Send, after: dict[str, PortCounters]) -> list[list[Hop]]:
        name = send.port.name
        before, now = send.before[name], after[name]
        n = len(send.frames)
        ran = now.run_cnt - before.run_cnt if now.prog_id == before.prog_id else 0
        packets = before.delta(now, "rx_xdp_packets")
        if now.prog_id is None or not (ran or packets):
            return [[] for _ in send.frames]
        counts = {"DROP": before.delta(now, "rx_xdp_drops"), "TX": before.delta(now, "rx_xdp_tx"),
                  "REDIRECT": before.delta(now, "rx_xdp_redirect")}
        counts["PASS"] = max(max(ran, packets) - sum(counts.values()), 0)
        egress = [p.name for p in PORTS if send.before[p.name].delta(after[p.name], "tx_xdp_xmit")]
        given = [verdict for verdict, count in counts.items() if count]
        if len(given) == 1 and counts[given[0]] == n:
            verdict = given[0]
            hops = [Hop("XDP", name, verdict)]
            if verdict == "TX":
                hops.append(Hop("NIC_TX", name, "XMIT"))
            elif verdict == "REDIRECT" and len(egress) == 1:
                hops.append(Hop("NIC_TX", egress[0], "XMIT"))
            return [list(hops) for _ in send.frames]
        tally = ", ".join(f"{verdict} {count}" for verdict, count in counts.items() if count)
        summary = f"{n} frames in one send: {tally} (veth counters do not say which frame got which)"
        return [[Hop("XDP", name, "", summary)] for _ in send.frames]

    def merge(self, journeys: list[Journey]) -> list[Journey]:
        """Put each frame's XDP and TC hops first in its journey: the traced packet
        with the same header line (passed), the drop journey of a frame XDP or TC
        dropped, or a journey of its own (TX, REDIRECT, or a frame nothing else saw)."""
        taken: set[int] = set()
        extra = []
        for frame, hops in self.hops():
            summary = frame_summary(frame)
            dropped_at = hops[-1].stage if hops[-1].verdict in ("DROP", "SHOT") else None
            match = next((j for j in journeys if id(j) not in taken and str(j.packet) == summary
                          and (dropped_at is None or (j.drop is not None and j.drop.stage == dropped_at))), None)
            if match is None or (dropped_at is None and match.drop is not None
                                 and match.drop.stage in ("XDP", "TC_INGRESS")):
                extra.append(Journey(packet=summary, hops=hops))
                continue
            taken.add(id(match))
            match.hops[:0] = hops
        return journeys + extra

    def clear(self) -> None:
        self._sends.clear()

    def close(self) -> None:
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None
