"""Service mode's packet I/O for the TRex stand-in: push_pkts and captures, on AF_PACKET.

TRex does both on its RX core (trex-core src/stx/common/trex_capture.cpp:
TrexCaptureMngr, a capture = a filter of TX and RX ports, a packet buffer of `limit`
packets, "fixed" dropping new packets when full, "cyclic" dropping the oldest;
fetch pops up to `pkt_limit` oldest packets). Here each port has one AF_PACKET
socket: frames are pushed with send() on it, and a reader thread copies what it
receives into the captures that ask for it: PACKET_OUTGOING frames (what the port
sent, pushed or by a traffic run) to captures with the port in `tx`, the others to
captures with it in `rx`. While a traffic run's generator sends, the sockets take
no frames (a socket filter that accepts nothing), as TRex's captures would not
copy line-rate traffic either; what was queued before stays.
"""
from __future__ import annotations

import base64
import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.drivers.auxdata import ANCILLARY_SPACE, enable_auxdata, with_vlan_tag

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # include/uapi/linux/if_packet.h
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
# A classic BPF socket filter of one instruction, `ret #0`: it accepts no frame.
ACCEPT_NOTHING = struct.pack("HBBI", 0x06, 0, 0, 0)
MAX_FRAME = 65536
SOCKET_RCVBUF = 8 << 20
READ_TICK = 0.05  # seconds the reader waits for frames before looking for new sockets
# trex-core src/common/captureFile.h
MIN_PKT_SIZE, MAX_PKT_SIZE = 14, 9 * 1024 + 22


@dataclass
class CapturedFrame:
    """TrexPkt: one captured frame, as trex_pkt.h to_json() shows it."""

    binary: bytes
    port: int
    origin: str  # "TX" or "RX"
    ts: float
    index: int

    def to_json(self, snaplen: int) -> dict:
        caplen = len(self.binary) if snaplen == 0 or len(self.binary) < snaplen else snaplen
        return {"ts": self.ts, "binary": base64.b64encode(self.binary[:caplen]).decode(),
                "port": self.port, "index": self.index, "wirelen": len(self.binary), "origin": self.origin}


@dataclass
class Capture:
    """TrexCapture: which ports' frames it takes, and its packet buffer."""

    id: int
    tx: frozenset[int]
    rx: frozenset[int]
    limit: int
    cyclic: bool
    start_ts: float
    active: bool = True
    matched: int = 0  # frames the filter took (m_pkt_index)
    fetched: int = 0
    frames: deque = field(default_factory=deque)

    def take(self, binary: bytes, port: int, origin: str, ts: float) -> None:
        """TrexCapture::handle_pkt(): the frame is numbered, then kept if there is room
        (TrexPktBuffer::push()), so a fetch shows what a full buffer dropped as gaps."""
        if not self.active:
            return
        self.matched += 1
        if len(self.frames) >= self.limit:
            if not self.cyclic:
                return  # MODE_DROP_TAIL
            self.frames.popleft()  # MODE_DROP_HEAD
        self.frames.append(CapturedFrame(binary, port, origin, ts, self.matched))

    def to_json(self) -> dict:
        """TrexCapture::to_json()."""
        return {"id": self.id, "matched": self.matched, "fetched": self.fetched,
                "filter": {"tx": sum(1 << p for p in self.tx), "rx": sum(1 << p for p in self.rx), "bpf": ""},
                "state": "ACTIVE" if self.active else "STOPPED",
                "count": len(self.frames), "bytes": sum(len(f.binary) for f in self.frames),
                "limit": self.limit, "mode": "cyclic" if self.cyclic else "fixed"}


class CaptureError(Exception):
    """A capture command TRex refuses (TrexCaptureRC's messages)."""


class PortIO:
    """The stand-in's ports' AF_PACKET sockets and the captures reading them."""

    def __init__(self, names: list[str]):
        self._names = names
        self._sockets: list[socket.socket] = []
        # Pushed frames leave by a socket of their own (protocol 0: it receives nothing):
        # dev_queue_xmit_nit() never loops a frame back to the socket that sent it.
        self._senders: list[socket.socket] = []
        for name in names:
            sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sender.bind((name, 0))
            self._senders.append(sender)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
            enable_auxdata(sock)
            sock.bind((name, ETH_P_ALL))
            sock.setblocking(False)
            self._sockets.append(sock)
        self._captures: dict[int, Capture] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="trex-standin capture", daemon=True)
        self._reader.start()

    def push(self, port: int, frames: list[bytes], ipg_usec: float) -> int:
        """Send `frames` from `port` in order, `ipg_usec` apart; how many were sent.

        From one CPU, the first this process may use: a veth runs its peer's receive
        path in the sender's softirq (veth_xmit() -> netif_rx()), and a NIC with one
        RX queue delivers on the one CPU its interrupt goes to, so the DUT gets a
        port's frames on one CPU as from such a NIC (a perf event array's samples
        land in one CPU's ring, say)."""
        sock = self._senders[port]
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})  # this thread only (sched_setaffinity(2))
        try:
            for n, frame in enumerate(frames):
                if n and ipg_usec:
                    time.sleep(ipg_usec / 1e6)
                sock.send(frame)
        finally:
            os.sched_setaffinity(0, allowed)
        return len(frames)

    def start(self, tx: list[int], rx: list[int], limit: int, cyclic: bool) -> Capture:
        with self._lock:
            capture = Capture(self._next_id, frozenset(tx), frozenset(rx), limit, cyclic, time.time())
            self._captures[capture.id] = capture
            self._next_id += 1
        return capture

    def _lookup(self, capture_id: int) -> Capture:
        capture = self._captures.get(capture_id)
        if capture is None:
            raise CaptureError(f"capture ID {capture_id} does not exist")  # RC_CAPTURE_NOT_FOUND
        return capture

    def stop(self, capture_id: int) -> int:
        """Stops taking frames; how many it holds."""
        with self._lock:
            capture = self._lookup(capture_id)
            capture.active = False
            return len(capture.frames)

    def fetch(self, capture_id: int, pkt_limit: int) -> tuple[list[CapturedFrame], int, float]:
        """TrexCapture::fetch(): up to `pkt_limit` oldest frames, how many remain, the start time."""
        with self._lock:
            capture = self._lookup(capture_id)
            frames = [capture.frames.popleft() for _ in range(min(pkt_limit, len(capture.frames)))]
            capture.fetched += len(frames)
            return frames, len(capture.frames), capture.start_ts

    def remove(self, capture_id: int) -> None:
        with self._lock:
            self._lookup(capture_id)
            del self._captures[capture_id]

    def status(self) -> list[dict]:
        with self._lock:
            return [capture.to_json() for capture in self._captures.values()]

    @contextmanager
    def deaf(self):
        """No frame reaches the captures meanwhile (a traffic run); earlier ones stay queued."""
        program = ctypes.create_string_buffer(ACCEPT_NOTHING)
        fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
        for sock in self._sockets:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            yield
        finally:
            for sock in self._sockets:
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)

    def close(self) -> None:
        self._stop.set()
        self._reader.join()
        for sock in self._sockets + self._senders:
            sock.close()

    def _read(self) -> None:
        ports = {sock.fileno(): (n, sock) for n, sock in enumerate(self._sockets)}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(ports), [], [], READ_TICK)
            for fd in ready:
                port, sock = ports[fd]
                while True:
                    try:
                        frame, ancillary, _, address = sock.recvmsg(MAX_FRAME, ANCILLARY_SPACE)
                    except BlockingIOError:
                        break
                    self._deliver(with_vlan_tag(frame, ancillary), port,
                                  "TX" if address[2] == PACKET_OUTGOING else "RX", time.time())

    def _deliver(self, frame: bytes, port: int, origin: str, ts: float) -> None:
        with self._lock:
            for capture in self._captures.values():
                if port in (capture.tx if origin == "TX" else capture.rx):
                    capture.take(frame, port, origin, ts)
