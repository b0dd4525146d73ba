"""Bulk transfer through the mock's TCP: one connection, 100 MB, virtual time.

An application on the DUT connects to a peer behind p0 and writes 100 MB as
fast as its send buffer takes it (non-blocking: each write takes what fits,
the next waits for an ACK to free room). The peer is a tester-side ACK
responder on bytes, not a second stack: it answers the SYN (MSS 1460,
SACK-permitted, timestamps, window scale 7) and acknowledges every second
data segment that left p0, cumulatively, echoing its timestamp and offering an
8 MB window, 1 ms (the RTT) after the segment left. No loss, no reordering:
what is measured is the send side's per-segment cost (tcp_write_xmit, the
segment and IP header on bytes, ip_local_out to the wire) and the ACK path
(tcp_v4_rcv, tcp_ack, cwnd growth) in slow start and congestion avoidance.

- `mock.tcp_bulk_100MB`: wall seconds for the 100 MB.
- `mock.tcp_bulk`: segments (data + ACKs handled) per wall second.
- `mock.tcp_bulk_peak_rss`: how far the resident set rose above where it stood
  before the transfer (the kernel's peak, VmHWM, reset through
  /proc/self/clear_refs first): what the transfer holds at most, the send queue
  up to tcp_wmem[2] (4 MB), the segments in flight, the tracer's bounded
  journeys. About 14 MB here, for 10 MB as for 150 MB.
"""
from __future__ import annotations

import time

from harness.mockkernel.ipv4 import tcp
from harness.mockkernel.ipv4.tcp_output import sk_stream_memory_free
from harness.mockkernel.ipv4.tcp_sock import TCP_ESTABLISHED
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import ip_to_int
from harness.mockkernel.target import sh
from harness.mockkernel.wire import ipv4
from harness.mockkernel.wire import tcp as wire_tcp
from harness.mockkernel.wire.ethernet import ETH_P_IP, mac_to_bytes
from harness.target import PORTS

TOTAL = 100 * 1000 * 1000
RTT = 0.001
PEER_WINDOW = 65535 << 7  # 8 MB, the largest with scale 7
PEER_WSCALE = 7
DUT, PEER, PEER_PORT = "10.0.0.1", "10.0.0.2", 5001
PEER_MAC = "02:00:00:00:00:02"
PEER_ISN = 7000
CHUNK = bytes(65536)


def _status_mb(field: str) -> float:
    """A size of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def _reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets VmHWM to the resident set now (Documentation/admin-guide/mm/soft-dirty)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


class AckResponder:
    """The peer: a SYN-ACK for the SYN, then an ACK per two data segments, each `RTT` after it left."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.wire = kernel.nics[PORTS[0].name].wire
        self.eth = mac_to_bytes(PORTS[0].mac) + mac_to_bytes(PEER_MAC) + ETH_P_IP.to_bytes(2, "big")
        self.saddr, self.daddr = ip_to_int(PEER), ip_to_int(DUT)
        self.rcv_nxt = 0
        self.unacked = 0
        self.segments = 0
        self.acks = 0

    def poll(self) -> None:
        """Answer what left p0 since the last poll."""
        frames, self.wire[:] = list(self.wire), []
        for frame in frames:
            buf = bytearray(frame)
            iph = ipv4.Ipv4Packet(buf, 14)
            if iph.protocol != ipv4.IPPROTO_TCP:
                continue
            th = iph.payload_offset
            sport, dport, seq, _, doff_byte, flags, _, _, _ = wire_tcp.unpack(buf, th)
            doff = wire_tcp.DATA_OFFSET_LEN[doff_byte]
            tsval = wire_tcp.parse_options(buf, th, doff).ts[0]
            length = 14 + iph.tot_len - th - doff
            if flags & wire_tcp.TCPHDR_SYN:
                self.rcv_nxt = seq + 1
                opts = wire_tcp.OutOptions(mss=1460, ws=PEER_WSCALE, sack_ok=True, ts=(1, tsval))
                self._answer(dport, sport, PEER_ISN, wire_tcp.TCPHDR_SYN | wire_tcp.TCPHDR_ACK, 65535, opts)
                continue
            if not length:
                continue
            self.segments += 1
            self.rcv_nxt = (seq + length) & 0xFFFFFFFF
            self.unacked += 1
            if self.unacked == 2:
                self.unacked = 0
                opts = wire_tcp.OutOptions(ts=(1, tsval))
                self._answer(dport, sport, PEER_ISN + 1, wire_tcp.TCPHDR_ACK, PEER_WINDOW >> PEER_WSCALE, opts)

    def _answer(self, sport: int, dport: int, seq: int, flags: int, window: int, opts) -> None:
        saddr, daddr = self.saddr, self.daddr
        segment = wire_tcp.build_segment(saddr, daddr, sport, dport, seq, self.rcv_nxt, flags, window,
                                         wire_tcp.write_options(opts))
        frame = self.eth + ipv4.build_header(saddr, daddr, ipv4.IPPROTO_TCP, len(segment), ident=0,
                                             frag_off=ipv4.IP_DF) + segment
        self.acks += 1
        kernel = self.kernel
        kernel.clock.add_timer(RTT, lambda: kernel.receive(PORTS[0].name, [frame]))


def bulk(total: int) -> tuple[float, int]:
    """(wall seconds, segments handled) for `total` bytes."""
    kernel = Kernel()
    sh(kernel, ["ip", "addr", "add", f"{DUT}/24", "dev", PORTS[0].name])
    sh(kernel, ["ip", "neigh", "add", PEER, "lladdr", PEER_MAC, "dev", PORTS[0].name, "nud", "permanent"])
    responder = AckResponder(kernel)
    start = time.perf_counter()
    sk = tcp.tcp_sock_create(kernel)
    try:
        tcp.tcp_v4_connect(sk, ip_to_int(PEER), PEER_PORT)
    except BlockingIOError:
        pass
    clock, tracer = kernel.clock, kernel.tracer
    written = 0
    while sk.snd_una != sk.write_seq or written < total:
        while written < total and sk.state == TCP_ESTABLISHED and sk_stream_memory_free(sk):
            written += tcp.tcp_sendmsg(sk, CHUNK[:min(len(CHUNK), total - written)])
        responder.poll()
        expiry = clock.next_expiry()
        if expiry is None:
            raise RuntimeError(f"the transfer stalled at {written} bytes written, snd_una {sk.snd_una}")
        clock.advance_to(expiry)
        tracer.summarise()  # as the target does after each call into the kernel
    elapsed = time.perf_counter() - start
    return elapsed, responder.segments + responder.acks


def main() -> None:
    _reset_peak_rss()
    before = _status_mb("VmRSS")
    elapsed, segments = bulk(TOTAL)
    print(f"figure mock.tcp_bulk_100MB {elapsed:.2f} s")
    print(f"figure mock.tcp_bulk {segments / elapsed:.0f} segments/s")
    print(f"figure mock.tcp_bulk_peak_rss {_status_mb('VmHWM') - before:.0f} MB")


if __name__ == "__main__":
    main()
