"""A tester port's AF_PACKET capture as the wire carried the frame: a VLAN tag the
DUT's driver left out of band (skb->vlan_tci, which a veth hands its peer as it is)
is not in the bytes recv() returns; PACKET_AUXDATA (net/packet/af_packet.c
packet_recvmsg()) reports it in struct tpacket_auxdata, and it goes back after the
MAC addresses, as libpcap's tcpdump shows the frame."""
from __future__ import annotations

import socket
import struct

from harness.mockkernel.wire.ethernet import ETH_P_8021Q, vlan_push

SOL_PACKET = 263  # include/linux/socket.h (Python's socket module lacks it)
PACKET_AUXDATA = 8  # include/uapi/linux/if_packet.h
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
TPACKET_AUXDATA = struct.Struct("=IIIHHHH")  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid
ANCILLARY_SPACE = socket.CMSG_SPACE(TPACKET_AUXDATA.size)


def enable_auxdata(sock: socket.socket) -> None:
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)


def with_vlan_tag(frame: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """`frame` with the tag its tpacket_auxdata reports put back in place."""
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= TPACKET_AUXDATA.size:
            status, _, _, _, _, tci, tpid = TPACKET_AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                return bytes(vlan_push(bytearray(frame), 0, len(frame), tpid, tci))
    return frame
