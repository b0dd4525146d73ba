"""The mock's line-rate model (harness/mockkernel/linerate/): RSS, and traffic
through MockTarget.traffic() in virtual time."""
from __future__ import annotations

import ipaddress

import pytest

from harness.mockkernel.linerate.rss import toeplitz_hash

# Microsoft's RSS verification suite ("Verifying the RSS Hash Calculation"), the
# key and the IPv4 vectors NIC datasheets repeat (82599 datasheet 7.1.2.8.3)
MS_RSS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")


@pytest.mark.parametrize("src, sport, dst, dport, ipv4_hash, ipv4_l4_hash", [
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a),
    ("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f),
    ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2),
])
def test_toeplitz_hash_matches_the_microsoft_rss_verification_vectors(src, sport, dst, dport, ipv4_hash,
                                                                     ipv4_l4_hash):
    addrs = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    assert toeplitz_hash(MS_RSS_KEY, addrs) == ipv4_hash
    assert toeplitz_hash(MS_RSS_KEY, addrs + ports) == ipv4_l4_hash
