"""nfnetlink from Python, for the netns lab: NETLINK_NETFILTER sockets opened inside
the DUT namespace, the attribute walk, and a ctnetlink dump of the conntrack table.

Messages are `struct nlmsghdr` + `struct nfgenmsg` + attributes (include/uapi/linux/
netfilter/nfnetlink.h); the message type is the subsystem << 8 | the message.
`nftrace.py` reads nf_tables trace and ruleset notifications the same way.

`conntrack_entries()` asks ctnetlink (IPCTNL_MSG_CT_GET, a dump) rather than parsing
`conntrack -L`: the tool prints only [UNREPLIED] and [ASSURED] of the status bits,
the dump carries the kernel's whole `IPS_*` status word (and needs no tool). Status
bits map to the mock's names: IPS_EXPECTED expected, IPS_SEEN_REPLY seen-reply,
IPS_ASSURED assured, IPS_CONFIRMED confirmed (every entry in the table), IPS_SRC_NAT
snat and IPS_DST_NAT dnat (set when NAT changed the tuple, so a null binding shows
neither), IPS_DYING dying, IPS_UNTRACKED untracked. TCP states are
`enum tcp_conntrack` named as `conntrack -L` prints them; UDP and ICMP have "".
"""
from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from harness.drivers.netns import NetnsLab
from harness.journey import CtEntry
from harness.target import TargetError

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33  # asm-generic/socket.h; not in Python's socket module
NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NFGENMSG = struct.Struct("=BBH")         # family, version, res_id (network order)
NLA_HEADER = struct.Struct("=HH")        # len, type
NLA_TYPE_MASK = 0x3FFF                   # without NLA_F_NESTED, NLA_F_NET_BYTEORDER
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_NFTABLES = 1, 10
RECV_SIZE = 1 << 16

# nfgen_family values and the names nft gives them
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def open_socket(lab: NetnsLab, groups: tuple[int, ...] = (), rcvbuf: int = 0) -> socket.socket:
    """A NETLINK_NETFILTER socket in the DUT namespace, closed with the lab, joined to
    multicast `groups`; `rcvbuf` bytes of receive buffer (SO_RCVBUFFORCE: root may
    exceed rmem_max)."""
    sock = lab.socket(lab.dut, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    for group in groups:
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    return sock


def messages(data: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(subsystem, message, attributes) of each netlink message in one datagram;
    NLMSG_DONE ends a dump, NLMSG_ERROR comes back as message -1 with the errno."""
    view = memoryview(data)
    offset = 0
    while offset + NLMSG_HEADER.size <= len(view):
        length, msg_type, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(view, offset)
        if length < NLMSG_HEADER.size:
            return
        body = view[offset + NLMSG_HEADER.size:offset + length]
        offset += (length + 3) & ~3
        if msg_type == NLMSG_DONE:
            yield 0, NLMSG_DONE, body
        elif msg_type == NLMSG_ERROR:
            yield 0, -1, body[:4]
        else:
            yield msg_type >> 8, msg_type & 0xFF, body


def family_of(body: memoryview) -> int:
    return NFGENMSG.unpack_from(body)[0]


def attributes(data: memoryview) -> dict[int, memoryview]:
    """The attributes of a message body (after its nfgenmsg) or of a nested one."""
    attrs = {}
    offset = 0
    while offset + NLA_HEADER.size <= len(data):
        length, attr_type = NLA_HEADER.unpack_from(data, offset)
        if length < NLA_HEADER.size:
            break
        attrs[attr_type & NLA_TYPE_MASK] = data[offset + NLA_HEADER.size:offset + length]
        offset += (length + 3) & ~3
    return attrs


def body_attributes(body: memoryview) -> dict[int, memoryview]:
    return attributes(body[NFGENMSG.size:])


def be16(value: memoryview) -> int:
    return struct.unpack("!H", value)[0]


def be32(value: memoryview) -> int:
    return struct.unpack("!I", value)[0]


def be64(value: memoryview) -> int:
    return struct.unpack("!Q", value)[0]


def string(value: memoryview) -> str:
    return bytes(value).split(b"\0", 1)[0].decode()


def request(subsystem: int, message: int, flags: int, family: int = socket.AF_INET, seq: int = 1) -> bytes:
    body = NFGENMSG.pack(family, 0, 0)
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), subsystem << 8 | message,
                             NLM_F_REQUEST | flags, seq, 0) + body


# ctnetlink ----------------------------------------------------------------------

IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_GET_STATS = 0, 1, 5
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT, CTA_MARK = 1, 2, 3, 4, 7, 8
NLA_F_NESTED = 0x8000
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
IPS_CONFIRMED = 1 << 3
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
# enum tcp_conntrack, named as `conntrack -L` prints them
TCP_CONNTRACK_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                       "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
# enum ip_conntrack_status bits, named as the mock names them (nf_conntrack.STATUS_NAMES)
CT_STATUS_NAMES = {1 << 0: "expected", 1 << 1: "seen-reply", 1 << 2: "assured", 1 << 3: "confirmed",
                   1 << 4: "snat", 1 << 5: "dnat", 1 << 9: "dying", 1 << 12: "untracked",
                   1 << 14: "offload"}
IP_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def conntrack_entries(lab: NetnsLab) -> list[CtEntry]:
    """The DUT's IPv4 conntrack table, in the kernel's dump order. (A dump walks the
    host's whole conntrack hash: about 5 ms.)"""
    return [ct_entry(body_attributes(body)) for message, body in
            _ctnetlink(lab, IPCTNL_MSG_CT_GET, NLM_F_DUMP) if message == IPCTNL_MSG_CT_NEW]


def check_conntrack(lab: NetnsLab) -> None:
    """TargetError unless ctnetlink answers in the DUT namespace (asks for its counts)."""
    for _ in _ctnetlink(lab, IPCTNL_MSG_CT_GET_STATS, 0):
        pass


def _ctnetlink(lab: NetnsLab, message: int, flags: int) -> Iterator[tuple[int, memoryview]]:
    """(message, body) of each answer to a ctnetlink request, up to its end."""
    with lab.inside(lab.dut):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    with sock:
        sock.send(request(NFNL_SUBSYS_CTNETLINK, message, flags))
        while True:
            for subsystem, answer, body in messages(sock.recv(RECV_SIZE)):
                if answer == NLMSG_DONE:
                    return
                if answer == -1:
                    code = -struct.unpack("=i", body)[0]
                    if code:
                        raise TargetError(f"ctnetlink in the DUT namespace failed: {os.strerror(code)} "
                                          "(is nf_conntrack_netlink in this kernel?)")
                    return
                if subsystem == NFNL_SUBSYS_CTNETLINK:
                    yield answer, body
                    if not flags & NLM_F_DUMP:
                        return


def ct_entry(attrs: dict[int, memoryview]) -> CtEntry:
    """One dumped entry. ICMP tuples are (src, dst, id, type << 8 | code) as the mock
    keeps them; the status names are CT_STATUS_NAMES' (the *_NAT_DONE bits unnamed)."""
    proto, original = ct_tuple(attrs[CTA_TUPLE_ORIG])
    _, reply = ct_tuple(attrs[CTA_TUPLE_REPLY])
    status = be32(attrs[CTA_STATUS]) if CTA_STATUS in attrs else 0
    state = ""
    if CTA_PROTOINFO in attrs:
        tcp = attributes(attributes(attrs[CTA_PROTOINFO]).get(CTA_PROTOINFO_TCP, memoryview(b"")))
        if CTA_PROTOINFO_TCP_STATE in tcp:
            number = tcp[CTA_PROTOINFO_TCP_STATE][0]
            state = TCP_CONNTRACK_NAMES[number] if number < len(TCP_CONNTRACK_NAMES) else str(number)
    return CtEntry(IP_PROTOCOL_NAMES.get(proto, str(proto)), state, original, reply,
                   frozenset(name for bit, name in CT_STATUS_NAMES.items() if status & bit),
                   be32(attrs[CTA_MARK]) if CTA_MARK in attrs else 0,
                   be32(attrs[CTA_TIMEOUT]) if CTA_TIMEOUT in attrs else 0)


def ct_tuple(data: memoryview) -> tuple[int, tuple[str, str, int, int]]:
    nested = attributes(data)
    ip = attributes(nested[CTA_TUPLE_IP])
    proto = attributes(nested[CTA_TUPLE_PROTO])
    number = proto[CTA_PROTO_NUM][0]
    src, dst = socket.inet_ntoa(ip[CTA_IP_V4_SRC]), socket.inet_ntoa(ip[CTA_IP_V4_DST])
    if CTA_PROTO_ICMP_TYPE in proto:
        return number, (src, dst, be16(proto[CTA_PROTO_ICMP_ID]),
                        proto[CTA_PROTO_ICMP_TYPE][0] << 8 | proto[CTA_PROTO_ICMP_CODE][0])
    if CTA_PROTO_SRC_PORT in proto:
        return number, (src, dst, be16(proto[CTA_PROTO_SRC_PORT]), be16(proto[CTA_PROTO_DST_PORT]))
    return number, (src, dst, 0, 0)


# creating entries ------------------------------------------------------------------

# a batch stays under the socket's send buffer (wmem_default, 212992 bytes here)
CREATE_BATCH_BYTES = 150_000
IP_PROTOCOL_NUMBERS = {name: number for number, name in IP_PROTOCOL_NAMES.items()}


def _nla(attr_type: int, payload: bytes) -> bytes:
    length = NLA_HEADER.size + len(payload)
    return NLA_HEADER.pack(length, attr_type) + payload + bytes(-length % 4)


def _nla_tuple(attr_type: int, proto: int, t: tuple[str, str, int, int]) -> bytes:
    ip = _nla(CTA_IP_V4_SRC, socket.inet_aton(t[0])) + _nla(CTA_IP_V4_DST, socket.inet_aton(t[1]))
    ports = _nla(CTA_PROTO_NUM, bytes([proto])) + _nla(CTA_PROTO_SRC_PORT, struct.pack("!H", t[2])) + \
        _nla(CTA_PROTO_DST_PORT, struct.pack("!H", t[3]))
    return _nla(attr_type | NLA_F_NESTED, _nla(CTA_TUPLE_IP | NLA_F_NESTED, ip) + _nla(CTA_TUPLE_PROTO | NLA_F_NESTED, ports))


def ct_new_message(entry: CtEntry, seq: int) -> bytes:
    """IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL for a TCP or UDP entry. The
    status must carry IPS_CONFIRMED: ctnetlink refuses to change that bit (EBUSY,
    ctnetlink_change_status()), and a created entry is confirmed."""
    proto = IP_PROTOCOL_NUMBERS[entry.proto]
    status = IPS_CONFIRMED
    for bit, name in CT_STATUS_NAMES.items():
        if name in entry.status:
            status |= bit
    body = NFGENMSG.pack(socket.AF_INET, 0, 0) + _nla_tuple(CTA_TUPLE_ORIG, proto, entry.original) + \
        _nla_tuple(CTA_TUPLE_REPLY, proto, entry.reply) + _nla(CTA_TIMEOUT, struct.pack("!I", entry.timeout)) + \
        _nla(CTA_STATUS, struct.pack("!I", status)) + _nla(CTA_MARK, struct.pack("!I", entry.mark))
    if entry.state:
        state = _nla(CTA_PROTOINFO_TCP_STATE, bytes([TCP_CONNTRACK_NAMES.index(entry.state)]))
        body += _nla(CTA_PROTOINFO | NLA_F_NESTED, _nla(CTA_PROTOINFO_TCP | NLA_F_NESTED, state))
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW,
                             NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, seq, 0) + body


def create_entries(lab: NetnsLab, entries) -> None:
    """Create conntrack entries in the DUT namespace, as `conntrack -I` does, sent
    in batches of messages without NLM_F_ACK: only failures are answered, and the
    first one raises. (262144 entries take about 2.5 s.)"""
    with lab.inside(lab.dut):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    with sock:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 20)
        batch: list[bytes] = []
        size = 0
        for seq, entry in enumerate(entries, 1):
            message = ct_new_message(entry, seq)
            batch.append(message)
            size += len(message)
            if size > CREATE_BATCH_BYTES:
                _send_batch(sock, batch)
                batch, size = [], 0
        if batch:
            _send_batch(sock, batch)


def _send_batch(sock: socket.socket, batch: list[bytes]) -> None:
    sock.send(b"".join(batch))
    sock.setblocking(False)
    try:
        data = sock.recv(RECV_SIZE)
    except BlockingIOError:
        return
    finally:
        sock.setblocking(True)
    for _, answer, body in messages(data):
        code = -struct.unpack("=i", body)[0] if answer == -1 else 0
        if code:
            raise TargetError(f"creating conntrack entries in the DUT namespace failed: {os.strerror(code)}")
