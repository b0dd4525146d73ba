"""IEEE 802.1D BPDUs in an 802.3 frame with an LLC header (net/bridge/br_stp_bpdu.c
br_send_config_bpdu(), br_send_tcn_bpdu(), br_send_bpdu(), br_stp_rcv(); net/llc
llc_pdu_header_init()).

The frame: the 802.3 header (the bridge group address, the port's address, the length
of what follows), LLC (DSAP = SSAP = 0x42, the spanning tree SAP; control 0x03, UI),
then the 35-byte BPDU: protocol id 0, version 0, type 0 (config), flags (topology
change 0x01, its ack 0x80), root id, root path cost, bridge id, port id, and the
message age, max age, hello time and forward delay in 1/256 s (br_set_ticks(), STP_HZ).
A topology change notification is the first four: protocol id, version, type 0x80.
Bridge ids are 8 bytes, priority then address, as memcmp() orders them.
"""
from __future__ import annotations

import struct

LLC_SAP_BSPAN = 0x42
LLC_PDU_CMD_UI = 0x03
BPDU_TYPE_CONFIG, BPDU_TYPE_TCN = 0x00, 0x80
BPDU_FLAG_TOPOLOGY_CHANGE, BPDU_FLAG_TOPOLOGY_CHANGE_ACK = 0x01, 0x80
CONFIG_BPDU_LEN, TCN_BPDU_LEN = 35, 4
LLC_HLEN = 3
LLC_HEADER = struct.Struct("!BBB")  # dsap, ssap, control
BPDU_HEADER = struct.Struct("!HBB")  # protocol id, version, type
CONFIG_BPDU = struct.Struct("!4xB8sI8sHHHHH")  # flags, root, cost, bridge, port, message age, max age, hello, delay
STP_HZ = 256
_FRAME = struct.Struct("!6s6sHBBBHBBBH6sIH6sHHHHH")


def config_bpdu_frame(dst: bytes, src: bytes, flags: int, root: tuple[int, bytes], root_path_cost: int,
                      bridge: tuple[int, bytes], port_id: int, message_age: float, max_age: float,
                      hello_time: float, forward_delay: float) -> bytes:
    """The whole frame; bridge ids as (priority, address), times in seconds."""
    ticks = [int(seconds * STP_HZ) for seconds in (message_age, max_age, hello_time, forward_delay)]
    return _FRAME.pack(dst, src, 3 + CONFIG_BPDU_LEN, LLC_SAP_BSPAN, LLC_SAP_BSPAN, LLC_PDU_CMD_UI,
                       0, 0, BPDU_TYPE_CONFIG, flags, root[0], root[1], root_path_cost, bridge[0], bridge[1],
                       port_id, *ticks)


def tcn_bpdu_frame(dst: bytes, src: bytes) -> bytes:
    return struct.pack("!6s6sHBBBHBB", dst, src, LLC_HLEN + TCN_BPDU_LEN, LLC_SAP_BSPAN, LLC_SAP_BSPAN,
                       LLC_PDU_CMD_UI, 0, 0, BPDU_TYPE_TCN)


def config_bpdu_fields(buf: bytearray, off: int) -> tuple:
    """(flags, root, root path cost, bridge, port id, and the four times in
    ticks) of the configuration BPDU at `off`."""
    return CONFIG_BPDU.unpack_from(buf, off)
