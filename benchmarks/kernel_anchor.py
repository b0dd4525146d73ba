"""The kernel anchors: what the real kernel in the netns lab's DUT delivers of frames
sent as fast as the lab's generator sends them, counted where the kernel counts it.

The sender is pjgen (tools/pjgen.c: sendmmsg of 64-frame batches, PACKET_QDISC_BYPASS)
on the tester end of p0, one single-burst stream of COUNT identical frames due at
once, and with no receiver: no RX ring and no capture socket on any tester port. The
DUT is an `AnchorLab`: a NetnsLab configured with the operators' commands and none of
NetnsTarget's observers (no wires on the tester ports, no nftrace, no kfree_skb
tracer), since each of them costs the kernel work per packet.

A figure is the packets delivered over the seconds pjgen took to send the burst (its
own clock, from the first sendmmsg to the return of the last). Delivered is counted
once the DUT is still (nothing more arrives for DRAIN_QUIET), by the caller's counter:
the tx_packets of a DUT port (veth_xmit() counts a frame once its peer's backlog took
it), or the datagrams queued on a DUT socket. What the backlog still held when pjgen's
clock stopped is counted within that time: at most netdev_max_backlog + 1 = 1001
frames (enqueue_to_backlog()), 0.5% of COUNT.

veth runs the DUT's receive path in the sender's context (veth_xmit() -> netif_rx(),
and the softirq when the sender re-enables bottom halves: docs/kernel-facts.md, "The
lab at rate"), so pjgen's rate in a run is the DUT's rate whenever every frame is
delivered. NAME_sender is the sender's own rate: the same burst sent the same way from
a tester port that is an ifb device (SINK_PORT's tester end: drivers/net/ifb.c
ifb_xmit() frees a frame no tc action redirected there with dev_kfree_skb(), a
consume_skb(); this kernel has no dummy device), so no receive path runs. A figure well under
its sender's is the DUT's cost per packet (with veth's hand-over and the tester's free
of each forwarded frame); one near it says the sender limits.

Each figure is the median of RUNS runs, alternating with its sender's in one lab so
that both see the same machine load; the runs' range goes to stderr, since the
machine is shared and its load moves these figures by a factor of two or more.
"""
from __future__ import annotations

import shlex
import socket
import statistics
import sys
import time
from collections.abc import Callable

from harness.drivers import generator
from harness.drivers.load_counters import PROC_NET_DEV_TX_PACKETS, device_counters
from harness.drivers.netns import NetnsLab
from harness.target import PORTS
from harness.traffic import Mode, Profile, Rate, Stream

COUNT = 200_000
RUNS = 5
FLAT_OUT = Rate(1e9)  # pps: every packet due at once, so pjgen sends as fast as it can
DRAIN_QUIET = 0.02  # seconds with nothing more arriving: the DUT's backlog is empty
SEND_TIMEOUT = 120.0  # for pjgen's burst: COUNT frames at a loaded machine's worst rates
SINK_PORT = PORTS[2]  # its veth pair is replaced by an ifb device on the tester side
SO_RCVBUFFORCE = 33  # include/uapi/asm-generic/socket.h; Python's socket module lacks it
QUEUED_BYTES_PER_DATAGRAM = 4096  # over a small datagram's skb truesize, so COUNT fit


class AnchorLab:
    """A NetnsLab whose DUT is configured as a Target is (`sh`), and nothing else; the
    DUT has no SINK_PORT, whose tester end is an ifb device."""

    def __init__(self) -> None:
        self.lab = NetnsLab()
        try:
            sink = SINK_PORT.peer
            self.lab.run(self.lab.tester, ["ip", "link", "del", sink])  # and its peer in the DUT
            self.lab.run(self.lab.tester, ["ip", "link", "add", sink, "address", SINK_PORT.peer_mac, "type", "ifb"])
            self.lab.run(self.lab.tester, ["ip", "link", "set", sink, "up"])
        except BaseException:
            self.lab.close()
            raise

    def sh(self, cmd: str, stdin: str | None = None) -> str:
        return self.lab.run(self.lab.dut, shlex.split(cmd), stdin)

    def tx_packets(self, port: str) -> Callable[[], int]:
        """A counter of the frames DUT `port` transmitted since the counter's last call."""
        last = self._device_tx_packets(port)

        def transmitted_since() -> int:
            nonlocal last
            now = self._device_tx_packets(port)
            transmitted, last = now - last, now
            return transmitted
        return transmitted_since

    def _device_tx_packets(self, port: str) -> int:
        proc_net_dev = self.lab.read_proc_net(self.lab.dut, "dev")
        return device_counters(proc_net_dev, PROC_NET_DEV_TX_PACKETS)[port]["tx_packets"]

    def udp_queue(self, bind: tuple[str, int]) -> Callable[[], int]:
        """A UDP socket bound in the DUT with room for COUNT datagrams, unread during a
        run: a counter of the datagrams queued on it since the counter's last call."""
        sock = self.lab.socket(self.lab.dut, socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, COUNT * QUEUED_BYTES_PER_DATAGRAM)
        sock.bind(bind)
        sock.setblocking(False)

        def queued_since() -> int:
            queued = 0
            while True:
                try:
                    sock.recv(1)
                except BlockingIOError:
                    return queued
                queued += 1
        return queued_since

    def close(self) -> None:
        self.lab.close()

    def __enter__(self) -> AnchorLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def print_figures(anchor: AnchorLab, name: str, frame: bytes, delivered: Callable[[], int]) -> None:
    """`figure kernel.NAME` (what `delivered` counts of COUNT `frame`s sent into p0, per
    second of sending) and `figure kernel.NAME_sender` (the same into the sink), RUNS
    runs each, alternating."""
    rates, sender_rates = [], []
    for _ in range(RUNS):
        rates.append(_delivered_pps(anchor, f"kernel.{name}", frame, delivered))
        sent, seconds = _send(anchor.lab, SINK_PORT.name, frame)
        sender_rates.append(sent / seconds)
    for figure, runs in ((f"kernel.{name}", rates), (f"kernel.{name}_sender", sender_rates)):
        print(f"{figure}: {RUNS} runs, {min(runs):.0f} to {max(runs):.0f} pps", file=sys.stderr)
        print(f"figure {figure} {statistics.median(runs):.0f} pps", flush=True)


def _delivered_pps(anchor: AnchorLab, figure: str, frame: bytes, delivered: Callable[[], int]) -> float:
    delivered()  # from here on
    sent, seconds = _send(anchor.lab, PORTS[0].name, frame)
    arrived = _until_still(delivered)
    if arrived != sent:
        print(f"{figure}: the DUT delivered {arrived} of the {sent} packets sent", file=sys.stderr)
    return arrived / seconds


def _send(lab: NetnsLab, port: str, frame: bytes) -> tuple[int, float]:
    """pjgen's burst of COUNT `frame`s from the tester end of `port`: packets sent and
    seconds taken."""
    stream = Stream.of(port, frame, id=1, rate=FLAT_OUT, mode=Mode.SINGLE_BURST, count=COUNT)
    with generator.GeneratorRun(lab, Profile((stream,)), None, receive=False) as run:
        run.wait_sent(generator.STARTUP_TIMEOUT + SEND_TIMEOUT)
        stats = run.stats()
    return stats["streams"][0]["opackets"], stats["tx_ns"] / 1e9


def _until_still(counted_since: Callable[[], int]) -> int:
    """What `counted_since` counts until a DRAIN_QUIET passes with nothing more."""
    total = 0
    while True:
        time.sleep(DRAIN_QUIET)
        more = counted_since()
        if not more:
            return total
        total += more
