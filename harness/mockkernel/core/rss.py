"""Receive-side scaling: which RX queue a frame lands in.

The NIC hashes each frame with the Toeplitz function over its IPv4 addresses
and, for TCP and UDP datagrams that are not fragments, its ports (the tuple
order of Microsoft's RSS specification, which NICs implement: source address,
destination address, source port, destination port), writes the hash into the
descriptor (the driver's skb_set_hash() makes it skb->hash), and picks the queue
from the indirection table by the hash's low bits.

The key and the table a driver sets up when nothing was configured are the
kernel's defaults (core/ethtool.py rss_defaults()). Non-IPv4 frames hash to 0 (queue 0), as NICs without a matching
hash type leave the hash unset.
"""
from __future__ import annotations

from harness.mockkernel.net import NetDevice
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.ipv4 import IP_MF, IP_OFFSET, IPPROTO_TCP, IPPROTO_UDP, IPV4_MIN_HLEN, Ipv4Packet
from harness.mockkernel.wire.udp import PORTS


def toeplitz_hash(key: bytes, data: bytes) -> int:
    """The Toeplitz hash of `data` under `key`: for every set bit of the input,
    XOR in the 32 key bits that start at that bit's position."""
    key_bits = len(key) * 8
    key_value = int.from_bytes(key, "big")
    value = int.from_bytes(data, "big")
    data_bits = len(data) * 8
    if data_bits + 32 > key_bits:
        raise ValueError(f"a {len(key)}-byte Toeplitz key hashes at most {(key_bits - 32) // 8} bytes, "
                         f"not {len(data)}")
    result = 0
    for bit in range(data_bits):
        if value >> (data_bits - 1 - bit) & 1:
            result ^= (key_value >> (key_bits - 32 - bit)) & 0xFFFFFFFF
    return result


def rss_input(frame: bytes) -> bytes:
    """The bytes the NIC hashes: IPv4 source and destination, then the L4
    ports for TCP/UDP first fragments; empty for anything else."""
    buf = bytearray(frame)
    if len(buf) < ethernet.ETH_HLEN + IPV4_MIN_HLEN or ethernet.ethertype(buf, 0) != ethernet.ETH_P_IP:
        return b""
    ip = Ipv4Packet(buf, ethernet.ETH_HLEN)
    data = (ip.saddr << 32 | ip.daddr).to_bytes(8, "big")
    l4 = ip.payload_offset
    if ip.protocol in (IPPROTO_TCP, IPPROTO_UDP) and not ip.frag_off & (IP_MF | IP_OFFSET) \
            and len(buf) >= l4 + PORTS.size:
        sport, dport = PORTS.unpack_from(buf, l4)  # TCP and UDP both start with the two ports
        data += (sport << 16 | dport).to_bytes(4, "big")
    return data


def rx_queue_of(dev: NetDevice, frame: bytes) -> tuple[int, int]:
    """(skb->hash, RX queue) of a frame arriving on `dev`."""
    data = rss_input(frame)
    rss_hash = toeplitz_hash(dev.rss_key, data) if data else 0
    if dev.channels == 1:
        return rss_hash, 0
    return rss_hash, dev.rss_indir[rss_hash % len(dev.rss_indir)]
