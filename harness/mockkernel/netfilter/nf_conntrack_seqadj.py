"""TCP sequence number adjustment (net/netfilter/nf_conntrack_seqadj.c).

An entry with the seqadj extension (`ct.seqadj`: [offset_before,
offset_after, correction_pos] per direction) and IPS_SEQ_ADJUST set has the
sequence numbers of one direction shifted by an offset: nf_confirm() runs
nf_ct_seq_adjust() on every TCP segment of the entry that is not looped
back, which adds this direction's offset to SEQ and takes the other
direction's off ACK and off the SACK blocks (nf_ct_sack_adjust()), with
incremental checksum updates. nf_ct_seq_offset() is what the TCP tracker's
tcp_in_window() takes off an ACK before it compares it with the other side's
sequence space. Users: SYN proxy (nf_synproxy.py, one offset for the whole
connection: before and after are equal). Left out: the NAT helpers'
nf_ct_seqadj_set() (a change of payload length at a correction position).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_conntrack import IPS_SEQ_ADJUST, NfConn, ct_direction, nf_ct_set_status
from harness.mockkernel.wire import tcp

U32 = 0xFFFFFFFF
OFFSET_BEFORE, OFFSET_AFTER, CORRECTION_POS = 0, 1, 2


def after(seq1: int, seq2: int) -> bool:
    return 0 < (seq1 - seq2) & U32 < 0x80000000


def nfct_seqadj_ext_add(ct: NfConn) -> None:
    """nfct_seqadj_ext_add(): both directions at offset 0."""
    ct.seqadj = [[0, 0, 0], [0, 0, 0]]


def nf_ct_seqadj_init(ct: NfConn, ctinfo: int, off: int) -> None:
    """nf_ct_seqadj_init(): the direction of `ctinfo` gets offset `off` (0: nothing changes)."""
    off &= U32
    if off == 0:
        return
    nf_ct_set_status(ct, IPS_SEQ_ADJUST)
    this_way = ct.seqadj[ct_direction(ctinfo)]
    this_way[OFFSET_BEFORE] = this_way[OFFSET_AFTER] = off


def nf_ct_seq_offset(ct: NfConn, direction: int, seq: int) -> int:
    """nf_ct_seq_offset(): the offset of `direction` for a segment at `seq` (0 without the extension)."""
    if ct.seqadj is None:
        return 0
    way = ct.seqadj[direction]
    return way[OFFSET_AFTER] if after(seq, way[CORRECTION_POS]) else way[OFFSET_BEFORE]


def nf_ct_seq_adjust(buf: bytearray, th: int, ct: NfConn, ctinfo: int) -> None:
    """nf_ct_seq_adjust() of the TCP header at `th`: SEQ plus this direction's
    offset, ACK and SACK blocks less the other's."""
    direction = ct_direction(ctinfo)
    this_way, other_way = ct.seqadj[direction], ct.seqadj[1 - direction]
    seq, ack = tcp.HEADER.unpack_from(buf, th)[2:4]
    seqoff = this_way[OFFSET_AFTER] if after(seq, this_way[CORRECTION_POS]) else this_way[OFFSET_BEFORE]
    tcp.replace_u32(buf, th, th + tcp.SEQ, (seq + seqoff) & U32)
    if not buf[th + tcp.FLAGS] & tcp.TCPHDR_ACK:
        return
    if after((ack - other_way[OFFSET_BEFORE]) & U32, other_way[CORRECTION_POS]):
        ackoff = other_way[OFFSET_AFTER]
    else:
        ackoff = other_way[OFFSET_BEFORE]
    tcp.replace_u32(buf, th, th + tcp.ACK_SEQ, (ack - ackoff) & U32)
    nf_ct_sack_adjust(buf, th, other_way)


def nf_ct_sack_adjust(buf: bytearray, th: int, other_way: list) -> None:
    """nf_ct_sack_adjust() / nf_ct_sack_block_adjust(): each SACK block's
    edges less the other direction's offset (the one its start falls under)."""
    doff = tcp.DATA_OFFSET_LEN[buf[th + tcp.DOFF]]
    for kind, ptr, size in tcp.options(buf, th, doff):
        if kind != tcp.TCPOPT_SACK or size < tcp.TCPOLEN_SACK_BASE + tcp.TCPOLEN_SACK_PERBLOCK \
                or (size - tcp.TCPOLEN_SACK_BASE) % tcp.TCPOLEN_SACK_PERBLOCK:
            continue
        for block in range(ptr + tcp.TCPOLEN_SACK_BASE, ptr + size, tcp.TCPOLEN_SACK_PERBLOCK):
            start, end = tcp.sack_block(buf, block)
            if after((start - other_way[OFFSET_BEFORE]) & U32, other_way[CORRECTION_POS]):
                off = other_way[OFFSET_AFTER]
            else:
                off = other_way[OFFSET_BEFORE]
            tcp.replace_u32(buf, th, block, (start - off) & U32)
            tcp.replace_u32(buf, th, block + 4, (end - off) & U32)
