"""struct sk_buff and its buffer operations (include/linux/skbuff.h, net/core/skbuff.c).

The packet lives in one bytearray `buf` from `head` (0) to `end`; `data` and
`tail` bound the current contents, so pushing a link-layer header uses headroom
as the kernel does. Header positions are offsets into `buf`. The Python object
is the metadata; `skb_clone()` shares the bytes, `skb_copy()` does not.
truesize and `end` (skb_end_offset()) are the kernel's for the head
__alloc_skb() would get for the size asked: kmalloc_reserve()'s slab object
(skb_small_head_cache, else a power-of-two kmalloc size) less skb_shared_info,
plus the sk_buff (SKB_TRUESIZE()); `buf` itself holds only the bytes up to tail.
A GSO skb (skb_shinfo()->gso_size, gso_segs) is one linear TCP packet of
gso_segs segments of gso_size bytes each (the last may be shorter), which
skb_gso_segment() (core/gso.py) cuts before a driver without TSO.
A VLAN tag taken out of the frame (skb_vlan_untag()) is `vlan_proto` and
`vlan_tci` (vlan_proto 0: none, as skb_vlan_tag_present() reads vlan_all).
Left out: paged frags (every skb here is linear), GSO types other than TCPv4,
the truesize change when pskb_expand_head() grows the headroom.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.wire.ethernet import ETH_HLEN, VLAN_HLEN, vlan_pop, vlan_push

NET_SKB_PAD = 64
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4
PKT_TYPE_NAMES = ("host", "broadcast", "multicast", "otherhost", "outgoing")
SMP_CACHE_BYTES = 64
SKB_SHINFO_SIZE = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
SKB_STRUCT_SIZE = 256  # SKB_DATA_ALIGN(sizeof(struct sk_buff))
# skb_small_head_cache's object, SKB_HEAD_ALIGN(MAX_TCP_HEADER) (config-dependent, not a power
# of two): 576 on the lab's 6.18, measured (heads of up to 256 bytes have truesize 832)
SKB_SMALL_HEAD_CACHE_SIZE = 576
# zeros, never written: `_PADS[headroom] + payload` allocates the buffer once
_PADS = tuple(bytearray(headroom) for headroom in range(NET_SKB_PAD + 1))


class SkBuff:
    __slots__ = ("buf", "data", "tail", "protocol", "pkt_type", "mark", "secmark", "priority", "hash",
                 "cb", "dev", "net", "mac_header", "network_header", "transport_header",
                 "dst", "sk", "journey", "tstamp", "ignore_df", "truesize", "nfct", "ctinfo",
                 "skb_iif", "tc_index", "gso_size", "gso_segs", "end", "csum_complete", "csum_valid",
                 "vlan_proto", "vlan_tci", "__weakref__")

    def __init__(self, payload: bytes | bytearray, headroom: int = NET_SKB_PAD, size: int = 0):
        """__alloc_skb(size) + skb_reserve(headroom) + skb_put_data(payload): the
        packet's bytes after `headroom` bytes for headers to be pushed; `size`
        (what the allocator asked for) defaults to headroom and payload."""
        self.buf = buf = (_PADS[headroom] if headroom <= NET_SKB_PAD else bytearray(headroom)) + payload
        self.data = data = headroom
        self.tail = tail = len(buf)
        self.protocol = self.pkt_type = self.mark = self.secmark = self.priority = self.hash = 0
        self.cb = self.dev = self.net = self.dst = self.sk = self.journey = self.nfct = None
        # skb_iif: the device it was received on; vlan_proto, vlan_tci: a tag held out of band
        self.ctinfo = self.skb_iif = self.tc_index = self.vlan_proto = self.vlan_tci = 0
        self.gso_size = self.gso_segs = 0  # skb_shinfo(): 0 for an skb that is not GSO
        self.mac_header = self.network_header = self.transport_header = data
        self.tstamp = 0.0
        self.ignore_df = False
        # ip_summed CHECKSUM_COMPLETE and csum_valid (None: taken, not evaluated yet) once netfilter
        # summed a received packet (netfilter/utils.py)
        self.csum_complete = self.csum_valid = False
        size = size or tail
        try:
            head = _HEAD_BY_CACHE_LINES[(size + SMP_CACHE_BYTES - 1) >> 6]
        except IndexError:
            head = kmalloc_reserve(size)
        self.end = head - SKB_SHINFO_SIZE  # SKB_WITH_OVERHEAD()
        self.truesize = head + SKB_STRUCT_SIZE  # SKB_TRUESIZE(end)

    @property
    def len(self) -> int:
        return self.tail - self.data

    def headroom(self) -> int:
        return self.data

    def tailroom(self) -> int:
        """skb_tailroom(): what the head holds past tail; none in a GSO skb,
        whose payload the kernel keeps in frags (skb_is_nonlinear())."""
        return 0 if self.gso_size else self.end - self.tail

    def bytes(self) -> bytes:
        return bytes(self.buf[self.data:self.tail])

    def pull(self, n: int) -> None:
        """skb_pull(): consume `n` bytes at the front."""
        self.data += n

    def push(self, n: int) -> int:
        """skb_push(): claim `n` bytes of headroom (reallocating if short); returns data."""
        if self.data < n:
            grow = NET_SKB_PAD + n
            self.buf[0:0] = bytes(grow)
            self.data += grow
            self.tail += grow
            self.end += grow
            self.mac_header += grow
            self.network_header += grow
            self.transport_header += grow
        self.data -= n
        return self.data


def kmalloc_reserve(size: int) -> int:
    """The bytes a head asked for `size` bytes occupies (net/core/skbuff.c
    kmalloc_reserve()): SKB_HEAD_ALIGN(size), the data to a cache line plus
    skb_shared_info, from skb_small_head_cache when it fits, else
    kmalloc_size_roundup()'s power-of-two slab (or pages, past 8 KiB)."""
    obj_size = ((size + SMP_CACHE_BYTES - 1) & -SMP_CACHE_BYTES) + SKB_SHINFO_SIZE
    if obj_size <= SKB_SMALL_HEAD_CACHE_SIZE:
        return SKB_SMALL_HEAD_CACHE_SIZE
    return 1 << (obj_size - 1).bit_length()


# kmalloc_reserve() of every size up to 64 KiB by its cache lines: an allocation costs an index
_HEAD_BY_CACHE_LINES = tuple(kmalloc_reserve(lines * SMP_CACHE_BYTES) for lines in range(1025))

alloc_skb = SkBuff  # the kernel's name for what the constructor does (a call less per packet than a wrapper)


def skb_clone(skb: SkBuff) -> SkBuff:
    """Shares `buf` (a write through either is seen by both, as with a clone's
    shared data until skb_unshare)."""
    clone = SkBuff.__new__(SkBuff)
    for slot in SkBuff.__slots__:
        if slot != "__weakref__":
            setattr(clone, slot, getattr(skb, slot))
    clone.cb = dict(skb.cb) if skb.cb else None
    return clone


def skb_copy(skb: SkBuff) -> SkBuff:
    """A private copy of metadata and bytes."""
    copy = skb_clone(skb)
    copy.buf = bytearray(skb.buf)
    return copy


def skb_vlan_untag(skb: SkBuff) -> bool:
    """skb_vlan_untag() (net/core/skbuff.c): the frame's outer 802.1Q/802.1ad tag
    leaves the bytes for skb->vlan_proto/vlan_tci (__vlan_hwaccel_put_tag()),
    the encapsulated ethertype becomes skb->protocol and the addresses move up
    over the tag (skb_reorder_vlan_header()). False, the skb freed, for a frame
    too short to hold the tag (pskb_may_pull() fails: kfree_skb())."""
    mac = skb.mac_header
    if skb.tail - mac < ETH_HLEN + VLAN_HLEN:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.SKB, "skb_vlan_untag")
        return False
    skb.vlan_proto = skb.protocol
    skb.vlan_tci, skb.protocol = vlan_pop(skb.buf, mac)
    skb.mac_header = mac = mac + VLAN_HLEN
    skb.data = skb.network_header = mac + ETH_HLEN
    return True


def __vlan_hwaccel_clear_tag(skb: SkBuff) -> None:
    skb.vlan_proto = skb.vlan_tci = 0


def vlan_insert_tag(skb: SkBuff, vlan_proto: int, tci: int) -> None:
    """The tag written into the frame after its addresses (vlan_insert_tag(),
    __vlan_hwaccel_push_inside()), in a buffer of the skb's own: flooded clones
    share theirs."""
    skb.buf = vlan_push(skb.buf, skb.mac_header, skb.tail, vlan_proto, tci)
    skb.mac_header = skb.data = 0
    skb.network_header = ETH_HLEN + VLAN_HLEN
    skb.tail = len(skb.buf)


def kfree_skb(skb: SkBuff, reason: DropReason, stage: Stage, location: str) -> None:
    """kfree_skb_reason(): the packet dies here; the tracer records why."""
    skb.net.tracer.drop(skb, reason, stage, location)
