"""nft_ct's other keys (net/netfilter/nft_ct.c nft_ct_get_eval(), nft_ct_set_eval(),
nft_ct_set_zone_eval(); nftables src/ct.c ct_templates[]) and nft_connlimit
(`ct count`, net/netfilter/nft_connlimit.c).

Loads from the packet's entry: `ct expiration` (ms until the entry times out,
nf_ct_expires()), `ct helper` (the mock attaches no helpers: the rule breaks, as
the kernel's does for an entry without one), `ct l3proto`, `ct protocol`, `ct
[original|reply] proto-src|proto-dst` (the tuple's ports), `ct [dir]
bytes|packets|avgpkt` (the entry's accounting, both directions summed without
a direction; nft_ct_get_init() turns accounting on, nf_ct_set_acct(), so
entries made after such a rule count, the others read 0), `ct [dir] zone`, `ct
id` (nf_ct_get_id()), `ct label` (the entry's 128 label bits; names from
/etc/connlabel.conf as nft 1.0.6 reads it). An untracked packet, or one without
an entry, breaks the rule. Sets: `ct zone set` before conntrack gives the
packet a template with the zone (its entry is made in that zone), after it
does nothing (the entry has one); `ct label set` sets the bits
(nf_connlabels_replace()); `ct event set` the entry's event mask (what ctnetlink
would report: the mock sends no events). `ct count [over] N`: the connections
this rule has seen that are still in the table (nf_conncount_add()), the rule
matching while they are at most N (over: more).
"""
from __future__ import annotations

import zlib
from pathlib import Path

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nf_conntrack import IPS_TEMPLATE, NfConn, Tuple
from harness.mockkernel.netfilter.nft_exprs import (NFT_BREAK, CompileCtx, Ct, CtSet, MapExpr, PrintCtx, Selector,
                                                    Stmt, _tracked)

CONNLABEL_CONF = Path("/etc/connlabel.conf")  # ct.c CONNLABEL_CONF: DEFAULT_INCLUDE_PATH "/connlabel.conf"
CT_LABEL_BIT_SIZE = 128


def connlabels() -> dict[str, int]:
    """rt_symbol_table_init(CONNLABEL_CONF): `BIT NAME` lines, # comments; none without the file."""
    try:
        lines = CONNLABEL_CONF.read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and types.parse_integer(words[0]) is not None:
            out.setdefault(words[1], types.parse_integer(words[0]))
    return out


class CtLabelType(types.Datatype):
    """ct_label_type: one label bit, by number or connlabel.conf name; the
    value is the bit's mask, printed as its number (or name)."""

    bitmask = True

    def parse(self, text: str | int) -> int:
        if isinstance(text, int):
            bit = text
            name = str(text)
        else:
            name, labels = text, connlabels()
            bit = labels[text] if text in labels else types.parse_integer(text)
            if bit is None:
                raise types.DatatypeError(f'{CONNLABEL_CONF}: could not parse {self.desc} "{text}"')
        if bit >= CT_LABEL_BIT_SIZE:
            raise types.DatatypeError(f"{name}: bit {bit} out of range ({CT_LABEL_BIT_SIZE} max)")
        return 1 << bit

    def format(self, value) -> str:
        bit = (value & -value).bit_length() - 1
        names = {b: n for n, b in connlabels().items()}
        return f'"{names[bit]}"' if bit in names else str(bit)

    def json_value(self, value):
        text = self.format(value)
        return int(text) if text.isdigit() else text.strip('"')


class CtEventType(types.BitmaskType):
    """ct_event_type: the IPCT_* event bits (ct.c ct_events_tbl); 0 is 0x0, a number in JSON."""

    def json_value(self, value):
        if value == 0:
            return 0
        names = self.format(value).split(",")
        return names if len(names) > 1 else names[0]


time = types.TimeType("time", 32, "relative time", types.HOST)
string = types.StringType("string", 16 * 8, "string", types.HOST)
ct_label = CtLabelType("ct_label", CT_LABEL_BIT_SIZE, "conntrack label", types.HOST)
ct_event = CtEventType("ct_event", 32, "conntrack event bits", {
    "new": 1 << 0, "related": 1 << 1, "destroy": 1 << 2, "reply": 1 << 3, "assured": 1 << 4,
    "protoinfo": 1 << 5, "helper": 1 << 6, "mark": 1 << 7, "seqadj": 1 << 8, "secmark": 1 << 9,
    "label": 1 << 10}, byteorder=types.HOST)
counter64 = types.IntegerType("integer", 64, "integer", types.HOST)
zone16 = types.IntegerType("integer", 16, "integer", types.HOST)
ct_id = types.IntegerType("integer", 32, "integer")

# ct.c ct_templates[]: the keys this module loads, with their types
KEY_TYPES = {"expiration": time, "helper": string, "l3proto": types.nfproto, "protocol": types.inet_proto,
             "proto-src": types.inet_service, "proto-dst": types.inet_service, "bytes": counter64,
             "packets": counter64, "avgpkt": counter64, "zone": zone16, "id": ct_id, "label": ct_label,
             "event": ct_event}
# what nft sends no direction for (listed without the one written)
UNDIRECTED = ("l3proto", "protocol")
SETTABLE = ("zone", "label", "event")


def nf_ct_get_id(ct: NfConn) -> int:
    """nf_ct_get_id(): a 32-bit hash of the entry (siphash of its address and
    tuples in the kernel); here of its tuples, stable for the entry's life."""
    return zlib.crc32(repr((ct.original, ct.reply)).encode())


class CtKey(Ct):
    """`ct [original|reply] KEY` for KEY in KEY_TYPES."""

    def __init__(self, key: str, direction: str | None = None):
        self.key, self.dtype = key, KEY_TYPES[key]
        self.direction = None if key in UNDIRECTED else direction

    def text(self, pctx: PrintCtx) -> str:
        return f"ct {self.direction} {self.key}" if self.direction else f"ct {self.key}"

    def ct_json(self) -> dict:
        return {"key": self.key, "dir": self.direction} if self.direction else {"key": self.key}

    def load(self, ctx: CompileCtx):
        if self.key in ("bytes", "packets", "avgpkt"):
            ctx.net.conntrack.acct = True  # nft_ct_get_init(): nf_ct_set_acct(net, true)
        return getattr(self, "_load_" + self.key.replace("-", "_"))(ctx)

    def _tuple_index(self):
        return 1 if self.direction == "reply" else 0

    @staticmethod
    def _entry_load(fn):
        def load(pkt):
            ct = _tracked(pkt.skb)
            return None if ct is None else fn(ct)
        return load

    def _load_expiration(self, ctx):
        clock = ctx.net.clock
        return self._entry_load(lambda ct: max(0, int(round((ct.timeout - clock.now) * 1000))))

    def _load_helper(self, ctx):
        return lambda pkt: None  # no entry of the mock has a helper: nft_ct_get_eval() breaks

    def _load_l3proto(self, ctx):
        return self._entry_load(lambda ct: ct.l3num)

    def _load_protocol(self, ctx):
        return self._entry_load(lambda ct: ct.original.proto)

    def _load_proto_src(self, ctx):
        index = self._tuple_index()
        return self._entry_load(lambda ct: ct.tuplehash[index].sport)

    def _load_proto_dst(self, ctx):
        index = self._tuple_index()
        return self._entry_load(lambda ct: ct.tuplehash[index].dport)

    def _counter(self, pick):
        """nft_ct_get_eval_counter(): one direction's, or both summed; 0 without accounting."""
        index = None if self.direction is None else self._tuple_index()

        def count(ct):
            acct = ct.acct
            if acct is None:
                return 0
            if index is None:
                return pick(acct[0]) + pick(acct[1])
            return pick(acct[index])
        return self._entry_load(count)

    def _load_packets(self, ctx):
        return self._counter(lambda direction: direction[0])

    def _load_bytes(self, ctx):
        return self._counter(lambda direction: direction[1])

    def _load_avgpkt(self, ctx):
        packets, octets = self._counter(lambda d: d[0]), self._counter(lambda d: d[1])

        def avgpkt(pkt):
            count = packets(pkt)
            return None if count is None else (octets(pkt) // count if count else 0)
        return avgpkt

    def _load_zone(self, ctx):
        return self._entry_load(lambda ct: ct.zone)

    def _load_id(self, ctx):
        return self._entry_load(nf_ct_get_id)

    def _load_label(self, ctx):
        return self._entry_load(lambda ct: ct.labels)

    def _load_event(self, ctx):
        return self._entry_load(lambda ct: ct.events)


class CtKeySet(CtSet):
    """`ct [dir] zone|label|event set V` (nft_ct_set_eval(), nft_ct_set_zone_eval())."""

    def __init__(self, lhs: CtKey, value, loc=None):
        super().__init__(lhs.key, value, loc)
        self.lhs = lhs
        self.needs_conntrack = lhs.key != "zone"

    def text(self, pctx: PrintCtx) -> str:
        value = self.value.text(pctx) if isinstance(self.value, Selector) else self.lhs.dtype.format(self.value)
        return f"{self.lhs.text(pctx)} set {value}"

    def mangle_json(self, value_json, selector_json) -> dict:
        value = selector_json(self.value) if isinstance(self.value, Selector) else \
            value_json(self.lhs.dtype, self.value)
        return {"mangle": {"key": {"ct": self.lhs.ct_json()}, "value": value}}

    def compile(self, ctx: CompileCtx):
        load = self.value.load(ctx) if isinstance(self.value, Selector) else (lambda pkt, v=self.value: v)
        miss = NFT_BREAK if isinstance(self.value, MapExpr) else None
        key = self.key
        if key == "zone":
            def set_zone(pkt):
                value = load(pkt)
                if value is None:
                    return miss
                skb = pkt.skb
                if skb.nfct is None or skb.nfct.status & IPS_TEMPLATE:  # not tracked yet: a template
                    template = NfConn(Tuple(0, 0, 0, 0, 0), Tuple(0, 0, 0, 0, 0), status=IPS_TEMPLATE)
                    template.zone = value & 0xFFFF
                    skb.nfct, skb.ctinfo = template, 2  # nf_ct_set(skb, ct, IP_CT_NEW)
            return set_zone
        attr = "labels" if key == "label" else "events"

        def set_ct_key(pkt):
            value = load(pkt)
            if value is None:
                return miss
            ct = _tracked(pkt.skb)
            if ct is not None and not ct.status & IPS_TEMPLATE:
                setattr(ct, attr, (ct.labels | value) if attr == "labels" else value)
        return set_ct_key


class ConnLimit(Stmt):
    """nft_connlimit: `ct count [over] N`."""

    needs_conntrack = True

    def __init__(self, count: int, over: bool, loc=None):
        self.count, self.over, self.loc = count, over, loc
        self.seen: dict = {}  # nf_conncount_list: original tuple -> entry

    def text(self, pctx: PrintCtx) -> str:
        return f"ct count {'over ' if self.over else ''}{self.count}"

    def connlimit_json(self) -> dict:
        return {"ct count": {"val": self.count, "inv": True} if self.over else {"val": self.count}}

    def compile(self, ctx: CompileCtx):
        limit, over, seen, net = self.count, self.over, self.seen, ctx.net

        def connlimit(pkt):
            ct = _tracked(pkt.skb)
            if ct is None:
                return NFT_BREAK  # nft_connlimit_do_eval(): no tuple to count
            table = net.conntrack.hash
            for t, known in list(seen.items()):  # the gc of closed and expired connections
                if table.get(t) is not known and known is not ct:
                    del seen[t]
            seen[ct.original] = ct
            return NFT_BREAK if (len(seen) > limit) is not over else None
        return connlimit
