"""Program contexts: `struct xdp_md` over an xdp_buff, `struct __sk_buff` over an skb.

Models the context conversions of net/core/filter.c (xdp_convert_ctx_access,
bpf_convert_ctx_access): a program reads its context as a small struct whose
`data`, `data_end` and `data_meta` fields are packet addresses. A hook builds
a context from a packet buffer and positions in it (`buf`, `data`, `data_end`
or `tail`), runs the program, and reads back what changed: the positions
after bpf_xdp_adjust_head/tail/meta, `redirect` after bpf_redirect or
bpf_redirect_map, and for __sk_buff the writable fields (mark, priority,
queue_mapping, tc_index, cb[], tc_classid, tstamp). Buffer positions follow
the kernel's layout: position 0 is data_hard_start, the first
XDP_FRAME_OVERHEAD bytes are reserved for struct xdp_frame.

While a program runs, the packet region is a memoryview of buf[data_meta:end]
(so accesses before data_meta or past the end fault), and the context
struct is an image: one xdp_md image for all XDP contexts, written when the
run starts (programs run one at a time); each __sk_buff its own, written when
the context is built, its packet fields again when data or tail moved. The
buffer must not be resized meanwhile by anyone but the helpers here.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from harness.mockkernel.bpf.vm import M32, PACKET_BASE, SEG_CTX, SEG_PACKET, BpfFault
from harness.mockkernel.wire.ethernet import ETH_P_IP

XDP_ACTIONS = ("XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT")
TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_RECLASSIFY, TC_ACT_SHOT, TC_ACT_PIPE, TC_ACT_STOLEN = -1, 0, 1, 2, 3, 4
TC_ACT_REDIRECT = 7
TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE",
              4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
XDP_PACKET_HEADROOM = 256
XDP_FRAME_OVERHEAD = 40  # sizeof(struct xdp_frame) at data_hard_start
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), the tailroom XDP keeps
# skb->ip_summed
CHECKSUM_NONE, CHECKSUM_UNNECESSARY, CHECKSUM_COMPLETE, CHECKSUM_PARTIAL = range(4)

_EMPTY = memoryview(b"")


@dataclass(frozen=True)
class Redirect:
    """Where bpf_redirect()/bpf_redirect_map() sent the packet: `kind` is
    "dev" (target an ifindex), "cpu" (a cpumap CPU) or "broadcast" (target a
    tuple of ifindexes); `ingress` is TC's BPF_F_INGRESS."""

    kind: str
    target: int | tuple[int, ...]
    ingress: bool = False


class _PacketContext:
    """What both contexts share: the packet region and its positions in buf."""

    __slots__ = ()
    prog_type = ""

    def attach(self, regions: dict) -> None:
        """Map the packet and write the context image for a run."""
        raise NotImplementedError

    def remap(self, regions: dict) -> None:
        """After a helper moved data, data_meta or the end: new region, new pointers."""
        self.detach(regions)
        self.attach(regions)

    def packet(self) -> bytes:
        """The packet bytes from data to the end."""
        raise NotImplementedError


_XDP_MD = struct.Struct("<IIIIII")
_XDP_IMAGE = bytearray(_XDP_MD.size)
_pack_xdp_md = _XDP_MD.pack_into
_XDP_REGION = memoryview(_XDP_IMAGE).toreadonly()  # no xdp_md field is writable


class XdpMd(_PacketContext):
    """struct xdp_buff seen through struct xdp_md. `frame_sz` is the driver's
    frame size (veth: a page): bpf_xdp_adjust_tail may grow the frame up to
    frame_sz - SKB_SHARED_INFO (`frame_end`, data_hard_end), extending the
    buffer with zeros on demand; without it the frame ends with the buffer."""

    prog_type = "xdp"
    __slots__ = (
        "_view",
        "buf",
        "data",
        "data_end",
        "data_meta",
        "egress_ifindex",
        "frame_end",
        "ingress_ifindex",
        "redirect",
        "rx_queue_index",
    )

    def __init__(self, buf: bytearray, data: int, data_end: int, ingress_ifindex: int = 0,
                 rx_queue_index: int = 0, egress_ifindex: int = 0, data_meta: int | None = None,
                 frame_sz: int | None = None) -> None:
        self.buf, self.data, self.data_end = buf, data, data_end
        self.data_meta = data if data_meta is None else data_meta
        self.ingress_ifindex, self.rx_queue_index, self.egress_ifindex = ingress_ifindex, rx_queue_index, egress_ifindex
        self.frame_end = len(buf) if frame_sz is None else frame_sz - SKB_SHARED_INFO
        self.redirect = None

    @classmethod
    def from_frame(cls, frame: bytes, ingress_ifindex: int = 0, rx_queue_index: int = 0,
                   headroom: int = XDP_PACKET_HEADROOM, frame_sz: int | None = None) -> XdpMd:
        """A frame received into a fresh buffer after XDP_PACKET_HEADROOM, as a driver does."""
        buf = bytearray(headroom) + frame
        return cls(buf, headroom, len(buf), ingress_ifindex, rx_queue_index, frame_sz=frame_sz)

    def attach(self, regions: dict) -> None:
        meta = self.data_meta
        view = self._view = memoryview(self.buf)[meta:self.data_end]
        regions[SEG_PACKET] = view
        regions[SEG_CTX] = _XDP_REGION
        _pack_xdp_md(_XDP_IMAGE, 0, PACKET_BASE + self.data - meta, PACKET_BASE + self.data_end - meta,
                     PACKET_BASE, self.ingress_ifindex, self.rx_queue_index, self.egress_ifindex)

    def detach(self, regions: dict) -> None:
        self._view.release()
        regions[SEG_PACKET] = _EMPTY

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.data_end])

    @staticmethod
    def verdict(r0: int) -> int:
        return r0 & M32


# struct __sk_buff (include/uapi/linux/bpf.h): name, offset, format, writable by a TC program
_SKB_LAYOUT = [("len", 0, "I", False), ("pkt_type", 4, "I", False), ("mark", 8, "I", True),
               ("queue_mapping", 12, "I", True), ("protocol", 16, "I", False), ("vlan_present", 20, "I", False),
               ("vlan_tci", 24, "I", False), ("vlan_proto", 28, "I", False), ("priority", 32, "I", True),
               ("ingress_ifindex", 36, "I", False), ("ifindex", 40, "I", False), ("tc_index", 44, "I", True),
               ("cb", 48, "5I", True), ("hash", 68, "I", False), ("tc_classid", 72, "I", True),
               ("data", 76, "I", False), ("data_end", 80, "I", False), ("napi_id", 84, "I", False),
               ("data_meta", 140, "I", False), ("tstamp", 152, "Q", True), ("wire_len", 160, "I", False),
               ("gso_segs", 164, "I", False), ("gso_size", 176, "I", False), ("hwtstamp", 184, "Q", False)]
SKB_WRITABLE = tuple(name for name, _, _, writable in _SKB_LAYOUT if writable)
_SKB_SIZE = 192
_SKB_POINTERS = struct.Struct("<II")  # data, data_end at 76
_U32 = struct.Struct("<I")


def _skb_struct(writable: bool = True) -> struct.Struct:
    """The whole of __sk_buff as one struct (padding where fields are not modelled);
    with `writable` False, its read-only fields only (the writable ones padding too)."""
    fmt, pos = "<", 0
    for _, offset, field_fmt, field_writable in _SKB_LAYOUT:
        size = struct.calcsize("<" + field_fmt)
        field = f"{size}x" if field_writable and not writable else field_fmt
        fmt += (f"{offset - pos}x" if offset > pos else "") + field
        pos = offset + size
    return struct.Struct(fmt + f"{_SKB_SIZE - pos}x")


_SKB_STRUCT = _skb_struct()
_SKB_READ_ONLY = _skb_struct(writable=False)


def _skb_pointers(data: int, tail: int, data_meta: int) -> tuple[int, int]:
    """__sk_buff's data and data_end: packet addresses (the packet region starts at data_meta)."""
    return PACKET_BASE + data - data_meta, PACKET_BASE + tail - data_meta


def _be16_field(value: int) -> int:
    """A __be16 skb field (protocol, vlan_proto) as the u32 a program loads, and back."""
    return ((value & 0xFF) << 8) | (value >> 8)


def _skb_field(offset: int, fmt: str, writable: bool) -> property:
    """A __sk_buff field kept in the context image (where the program reads and writes it)."""
    field = struct.Struct("<" + fmt)
    if fmt == "5I":
        def get(self) -> tuple[int, ...]:
            return field.unpack_from(self._image, offset)

        def set(self, value) -> None:
            field.pack_into(self._image, offset, *value)
    else:
        def get(self) -> int:
            return field.unpack_from(self._image, offset)[0]

        def set(self, value) -> None:
            field.pack_into(self._image, offset, value)
    return property(get, set if writable else None)


def _read_only_written(before: bytes, after: bytearray) -> list[str]:
    """The read-only fields whose bytes differ."""
    return [name for name, offset, fmt, writable in _SKB_LAYOUT if not writable
            and before[offset:offset + struct.calcsize("<" + fmt)] != after[offset:offset + struct.calcsize("<" + fmt)]]


class SkBuffCtx(_PacketContext):
    """struct sk_buff seen through struct __sk_buff by a TC (cls_bpf) program.
    `data` is where skb->data points when the program runs (the MAC header at
    TC ingress and egress), `tail` the end; `protocol` is the host-order
    EtherType; `meta_len` bytes before data are XDP metadata. Every __sk_buff
    field lives in the context image the program reads; the writable ones
    (SKB_WRITABLE: mark, queue_mapping, priority, tc_index, cb, tc_classid,
    tstamp) are attributes to read back after the run. A program writing any
    other field (which the verifier refuses) faults when it returns.
    `ip_summed` and `csum` are what the checksum helpers consult."""

    prog_type = "sched_cls"
    __slots__ = ("_before", "_image", "_packed", "_view", "buf", "csum", "data", "data_meta", "ip_summed", "redirect",
                 "tail")

    def __init__(self, buf: bytearray, data: int, tail: int, *, protocol: int = ETH_P_IP, pkt_type: int = 0,
                 mark: int = 0, priority: int = 0, queue_mapping: int = 0, ingress_ifindex: int = 0,
                 ifindex: int = 0, tc_index: int = 0, cb: tuple[int, ...] = (0,) * 5, hash: int = 0,
                 tc_classid: int = 0, vlan_tci: int | None = None, vlan_proto: int = 0x8100, napi_id: int = 0,
                 tstamp: int = 0, hwtstamp: int = 0, gso_segs: int = 0, gso_size: int = 0, meta_len: int = 0,
                 ip_summed: int = CHECKSUM_NONE, csum: int = 0) -> None:
        self.buf, self.data, self.tail, self.data_meta = buf, data, tail, data - meta_len
        self.ip_summed, self.csum = ip_summed, csum
        self.redirect = None
        self._image = bytearray(_SKB_SIZE)
        vlan = vlan_tci is not None
        self._packed = (data, tail, self.data_meta)  # the positions the image's data fields hold
        _SKB_STRUCT.pack_into(self._image, 0, tail - data, pkt_type, mark, queue_mapping, _be16_field(protocol), vlan,
                              vlan_tci or 0, _be16_field(vlan_proto) if vlan else 0, priority, ingress_ifindex, ifindex,
                              tc_index, *cb, hash, tc_classid, *_skb_pointers(*self._packed), napi_id, PACKET_BASE,
                              tstamp, tail - data, gso_segs, gso_size, hwtstamp)

    @property
    def len(self) -> int:
        return self.tail - self.data

    @property
    def protocol(self) -> int:
        return _be16_field(_U32.unpack_from(self._image, 16)[0])

    @property
    def vlan_tci(self) -> int | None:
        return _U32.unpack_from(self._image, 24)[0] if _U32.unpack_from(self._image, 20)[0] else None

    @property
    def vlan_proto(self) -> int | None:
        return _be16_field(_U32.unpack_from(self._image, 28)[0]) if _U32.unpack_from(self._image, 20)[0] else None

    def attach(self, regions: dict) -> None:
        image, positions = self._image, (self.data, self.tail, self.data_meta)
        view = self._view = memoryview(self.buf)[self.data_meta:self.tail]
        regions[SEG_PACKET] = view
        regions[SEG_CTX] = image
        if positions != self._packed:  # moved since the image was written: len, data, data_end, wire_len
            length = self.tail - self.data
            _U32.pack_into(image, 0, length)
            _SKB_POINTERS.pack_into(image, 76, *_skb_pointers(*positions))
            _U32.pack_into(image, 160, length)
            self._packed = positions
        self._before = bytes(image)

    def detach(self, regions: dict) -> None:
        self._view.release()
        regions[SEG_PACKET] = _EMPTY
        image, before = self._image, self._before
        if image != before and _SKB_READ_ONLY.unpack(image) != _SKB_READ_ONLY.unpack(before):
            written = _read_only_written(before, image)
            image[:] = before
            raise BpfFault(f"the program wrote read-only __sk_buff field(s) {', '.join(written)} "
                           "(the verifier refuses this)")

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.tail])

    @staticmethod
    def verdict(r0: int) -> int:
        return ((r0 & M32) ^ 0x80000000) - 0x80000000


for _name, _offset, _fmt, _writable in _SKB_LAYOUT:  # the plain fields as properties over the image
    if _name not in ("len", "protocol", "vlan_tci", "vlan_proto", "data", "data_end", "data_meta"):
        setattr(SkBuffCtx, _name, _skb_field(_offset, _fmt, _writable))
