"""The nft language as nftables 1.0.6 accepts it (src/scanner.l, parser_bison.y,
evaluate.c), for the mock kernel's subset.

`parse(text, filename, ctx)` turns a `nft -f` file or a one-shot command line
into `Command`s whose rules are already evaluated into statements
(nft_exprs): symbols resolved against their data types, implicit protocol
dependencies inserted (`tcp dport` gets `meta l4proto tcp` in front), adjacent
payload matches merged, as nft does before it sends a rule to the kernel.
Set elements of `add element` stay unresolved (`ElementSyntax`) until the
set's type is known (`resolve_elements`).

Errors are `NftError`s that print as nft prints them: the message, the input
line and a caret line under the offending token (`^`) with related tokens
underlined (`~`); `nft -f` errors are prefixed with `file:line:first-last:`.
Syntax nft takes that the mock does not model is an error naming it ("... is
not modelled by the mock kernel"), never ignored; a word nft's grammar refuses
is nft's own syntax error. Flowtable blocks are parsed and evaluated as
nft's flowtable_block and flowtable_evaluate() (FlowtableSpec). Left out: include, stateful objects,
JSON input, bison's "expecting ..." lists where the mock does not know
the grammar rule's alternatives (it gives them for header fields, keys and
single tokens), and recovery from an error in what the mock does not model.
After an error the parser skips to the end of the line or statement and goes
on, as bison's `error stmt_separator` rules do: every syntax error of the input
is reported, then the evaluation errors, in the order found.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace

from harness.mockkernel.netfilter import nft_bitwise
from harness.mockkernel.netfilter import nft_ct, nft_dynset
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_datatype import DatatypeError
from harness.mockkernel.netfilter.nft_exprs import (ECHO_TYPES, ETHER_TYPE, FIELD_ALIASES, ICMP_DEP_TYPES, L4PROTOS,
                                                    LIMIT_UNITS, NAT_DATA_TYPES, NAT_DATA_TYPES6,
                                                    PAYLOAD_FIELDS,
                                                    BYTE_UNITS, NF_LOG_IPOPT, NF_LOG_MACDECODE, NF_LOG_MASK,
                                                    NF_LOG_TCPOPT, NF_LOG_TCPSEQ, NF_LOG_UID, Comment, Concat, Counter, Ct, CtAddr, CtSet, Fib, Limit, Log,
                                                    MapExpr, Match, Meta, MetaBridge, MetaSet, Nat, Notrack, Payload,
                                                    PrintCtx, Prefix, Range, Reject, Selector, SetRef, Stmt,
                                                    Value, Verdict, VerdictMap, dependency_base, icmp_th_dep_type, l4_name,
                                                    payload_merge,
                                                    selector_parts)
from harness.mockkernel.netfilter.nft_exthdr import (EXTHDR6_SLOT_TEMPLATES, EXTHDR6_SLOTS, EXTHDR_EXISTS,
                                                     KIND_NAMES, OPTION_ALIASES, OPTION_KINDS, SACK_BLOCKS, TCP_OPTIONS,
                                                     Exthdr6, TcpOption, TcpOptionReset, TcpOptionSet)
from harness.mockkernel.netfilter import nft_proto  # its headers' payload fields registered on import
from harness.mockkernel.netfilter.nft_exthdr_sctp import SCTP_CHUNKS, SctpChunk
from harness.mockkernel.netfilter.nft_payload_raw import RAW_BASES, REGISTER_BITS, RawPayload
from harness.mockkernel.netfilter import nft_payload_raw
from harness.mockkernel.netfilter.nft_payload_set import NOT_SETTABLE, PayloadSet, RawPayloadSet
from harness.mockkernel.netfilter.nf_synproxy import (NF_SYNPROXY_OPT_MSS, NF_SYNPROXY_OPT_SACK_PERM,
                                                      NF_SYNPROXY_OPT_TIMESTAMP, NF_SYNPROXY_OPT_WSCALE)
from harness.mockkernel.netfilter.nft_objects import (LIST_KINDS, TIMEOUT_STATES, CounterObject, CtExpectObject,
                                                      CtHelperObject, CtTimeoutObject, LimitObject, NftObject,
                                                      ObjRef, QuotaObject, SynproxyObject, obj_name)
from harness.mockkernel.netfilter.nft_dup import Dup
from harness.mockkernel.netfilter.nft_hash import Jhash, Symhash
from harness.mockkernel.netfilter.nft_numgen import Numgen
from harness.mockkernel.netfilter.nft_osf import Osf
from harness.mockkernel.netfilter.nft_socket import Socket
from harness.mockkernel.netfilter.nft_synproxy import SYNPROXY_FAMILIES, Synproxy
from harness.mockkernel.netfilter.nft_tproxy import Tproxy
from harness.mockkernel.netfilter.nft_quota import Quota, QuotaState, data_unit_parse
from harness.mockkernel.netfilter.nft_meta import MetaKey
from harness.mockkernel.netfilter.nft_xfrm import Xfrm
from harness.mockkernel.netfilter.nft_queue import QUEUE_NUM, Queue
from harness.mockkernel.netfilter.nft_fwd_netdev import Fwd
from harness.mockkernel.netfilter.nft_dup_netdev import DupNetdev
from harness.mockkernel.netfilter.nft_flow_offload import FlowOffload
from harness.mockkernel.netfilter.nft_rt import Rt
from harness.mockkernel.netfilter.nft_set import CATCHALL, Element, NftSet, add_elements, SetError
from harness.mockkernel.wire.arp import ARPHRD_ETHER
from harness.mockkernel.wire.ethernet import ETH_P_8021Q

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
LINK_FAMILIES = ("bridge", "netdev")  # where `ether`/`vlan` need no `meta iiftype ether` in front
VLAN_ETHERTYPES = (0x8100, 0x88A8)  # an `ether type` that a vlan field can follow
MODELLED_FAMILIES = ("ip", "ip6", "inet", "netdev", "bridge", "arp")
HOOKS = {"ip": ("prerouting", "input", "forward", "output", "postrouting"),
         "ip6": ("prerouting", "input", "forward", "output", "postrouting"),
         "inet": ("prerouting", "input", "forward", "output", "postrouting", "ingress"),
         "netdev": ("ingress", "egress"),
         "arp": ("input", "forward", "output"),  # src/rule.c hooknum2str(NFPROTO_ARP)
         "bridge": ("prerouting", "input", "forward", "output", "postrouting")}
NETDEV_HOOK_NAMES = ("ingress", "egress")  # str2hooknum(NFPROTO_NETDEV)
ALL_HOOKS = {"prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"}
# src/rule.c std_prios, with the hooks nft 1.0.6 allows each name at
STD_PRIOS = (("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0), ("security", 50),
             ("srcnat", 100))
# src/rule.c bridge_std_prios (include/uapi/linux/netfilter_bridge.h NF_BR_PRI_*) and the hook
# each name is allowed at (None: every hook)
BRIDGE_STD_PRIOS = (("dstnat", -300), ("filter", -200), ("out", 100), ("srcnat", 300))
BRIDGE_PRIO_HOOKS = {-300: "prerouting", -200: None, 100: "output", 300: "postrouting"}
# statements and expressions nft knows that the mock does not model
NOT_MODELLED = {"queue",
                "add", "secmark",
                "update", "ibriport", "obriport", "xt", "fullcone", "set"}
# parser_bison.y meta_key_unqualified (ipsec aside: `ipsec` begins an ipsec expression too)
META_UNQUALIFIED = {"mark", "iif", "oif", "iifname", "oifname", "pkttype", "nftrace", "ibrname", "obrname",
                    "iiftype", "oiftype", "skuid", "skgid", "rtclassid", "cpu", "iifgroup", "oifgroup", "cgroup",
                    "time", "day", "hour"}
# parser_bison.y: the words each header expression takes after its keyword (its
# *_hdr_field rule, and `option` where ip_hdr_expr and tcp_hdr_expr have one) and the
# scanner's start condition the word is read in (SCANNER_KEYWORDS). A word nft knows
# that the mock lacks is "not modelled"; any other is nft's syntax error. Where bison
# names what it expected (4 alternatives or fewer) they are in its token order, as
# nft 1.0.6 prints them.
HEADER_FIELDS = {
    "ip": ("IP", ("version", "hdrlength", "dscp", "ecn", "length", "id", "frag-off", "ttl", "protocol",
                  "checksum", "saddr", "daddr", "option")),
    "ip6": ("IP6", ("version", "dscp", "ecn", "flowlabel", "length", "nexthdr", "hoplimit", "saddr", "daddr")),
    "tcp": ("TCP", ("sport", "dport", "sequence", "ackseq", "doff", "reserved", "flags", "window", "checksum",
                    "urgptr", "option")),
    "udp": ("EXPR_UDP", ("length", "checksum", "sport", "dport")),
    "udplite": ("EXPR_UDPLITE", ("checksum", "sport", "dport", "csumcov")),
    "icmp": ("ICMP", ("type", "code", "checksum", "id", "sequence", "gateway", "mtu")),
    "icmpv6": ("ICMP", ("type", "code", "checksum", "param-problem", "mtu", "id", "sequence", "max-delay")),
    "igmp": ("IGMP", ("type", "checksum", "mrt", "group")),
    "th": ("EXPR_TH", ("sport", "dport")),
    "ether": ("ETH", ("saddr", "daddr", "type")),
    "vlan": ("VLAN", ("id", "cfi", "dei", "pcp", "type")),
    "arp": ("ARP", ("htype", "ptype", "hlen", "plen", "operation", "saddr", "daddr")),
    "sctp": ("SCTP", ("sport", "dport", "vtag", "checksum", "chunk")),
    "dccp": ("EXPR_DCCP", ("type", "sport", "dport")),
    "ah": ("EXPR_AH", ("nexthdr", "hdrlength", "reserved", "spi", "sequence")),
    "esp": ("EXPR_ESP", ("sequence", "spi")),
    "comp": ("EXPR_COMP", ("nexthdr", "flags", "cpi")),
}
IP_OPTIONS = ("lsrr", "rr", "ssrr", "ra")  # ip_option_type
# ct_key, with ct_dir and the words only a ct statement takes (`ct count over`, `ct timeout set`)
CT_KEYS = ("l3proto", "protocol", "mark", "state", "direction", "status", "expiration", "helper", "saddr",
           "daddr", "proto-src", "proto-dst", "label", "event", "secmark", "id", "bytes", "packets", "avgpkt",
           "zone", "original", "reply", "count", "timeout", "expectation")
CT_DIR_KEYS = ("saddr", "daddr", "l3proto", "protocol", "proto-src", "proto-dst", "bytes", "packets", "avgpkt",
               "zone", "ip", "ip6")  # ct_key_dir, and ct_key_proto_field's ip/ip6
FIB_FLAGS = ("saddr", "daddr", "mark", "iif", "oif")
FIB_RESULTS = ("type", "oif", "oifname")
RT_KEYS = ("mtu", "classid", "nexthop", "ipsec")
RT_HDR_FIELDS = ("nexthdr", "hdrlength", "type", "seg-left")  # parser_bison.y rt_hdr_field
# parser_bison.y: the words after each IPv6 extension header's keyword, and the scanner scope they are read in
EXTHDR6_WORDS = {"hbh": ("EXPR_HBH", ("hdrlength", "nexthdr")), "dst": ("EXPR_DST", ("hdrlength", "nexthdr")),
                 "rt0": ("EXPR_RT", ("addr",)), "rt2": ("EXPR_RT", ("addr",)),
                 "srh": ("EXPR_RT", ("flags", "last-entry", "tag", "sid")),
                 "frag": ("EXPR_FRAG", ("nexthdr", "reserved", "frag-off", "reserved2", "more-fragments", "id")),
                 "mh": ("EXPR_MH", ("nexthdr", "hdrlength", "type", "reserved", "checksum"))}
# src/meta.c meta_templates[] as meta_key_parse() lists them in "known keys are ..."
META_KEYS = ("length", "protocol", "priority", "mark", "iif", "oif", "iifname", "oifname", "iiftype", "oiftype",
             "skuid", "skgid", "nftrace", "rtclassid", "secmark", "nfproto", "l4proto", "ibrname", "obrname",
             "pkttype", "cpu", "iifgroup", "oifgroup", "cgroup", "random", "ipsec", "iifkind", "oifkind", "ibrpvid",
             "ibrvproto", "time", "day", "hour", "sdif", "sdifname")
META_KEY_ALIASES = {"secpath": "ipsec", "ibriport": "ibrname", "obriport": "obrname"}
TOKEN_ALIASES = {"sequence": "seq"}  # %token SEQUENCE "seq": bison names a token by its alias
# src/scanner.l of nftables 1.0.6: the words its scanner returns as tokens of their own
# rather than as STRING, by flex start condition. Those under "" it returns in every
# start condition; the others only while the parser keeps that scope open (`list`
# opens CMD_LIST for the whole command, `@` opens AT for the set's name, `ip` opens IP
# for its header field, ...). A name, the grammar's `identifier` (a STRING), can be
# none of the words in force where it stands: nft refuses `chain fwd` with "syntax
# error, unexpected fwd". The word operators (eq, and, ...) are WORD_OPERATORS below.
# Read from v1.0.5's scanner.l plus 1.0.6's `xt`; each unscoped word, CMD_LIST's and
# AT's checked against nft 1.0.6 as a table, chain, set and jump target name.
SCANNER_KEYWORDS = {scope: frozenset(words.split()) for scope, words in (
    ("", """vmap include define redefine undefine describe hook device devices table chain rule set
        element map flowtable handle ruleset socket tproxy accept drop continue jump goto return
        inet netdev add replace update create insert delete get list reset flush rename import
        export monitor position index comment constant interval dynamic auto-merge timeout
        gc-interval elements expires policy size flow offload meter counter log queue limit quota
        hour day reject snat dnat masquerade redirect random th bridge ether type typeof vlan arp
        ip ecn time icmp icmpv6 igmp ip6 priority ah esp comp flags udp udplite tcp dccp sctp rt
        rt0 rt2 srh hbh frag dst mh meta mark iif iifname iiftype oif oifname oiftype skuid skgid
        nftrace rtclassid ibriport ibrname obriport obrname pkttype cpu iifgroup oifgroup cgroup
        ct numgen jhash symhash dup fwd fib osf synproxy notrack all exists missing exthdr ipsec
        secmark xt"""),
    ("ARP", "saddr daddr htype ptype hlen plen operation"),
    ("AT", "ll nh"),
    ("CT", """packets bytes over saddr daddr id protocol dport avgpkt l3proto proto-src proto-dst zone
        original reply direction event expectation expiration helper helpers label state status
        count"""),
    ("COUNTER", "name packets bytes"),
    ("ETH", "saddr daddr"),
    ("ICMP", "id checksum gateway code param-problem max-delay mtu sequence"),
    ("IGMP", "checksum mrt group"),
    ("IP", """to prefix saddr daddr id version hdrlength dscp length frag-off ttl protocol checksum
        lsrr rr ssrr ra ptr value option options addr"""),
    ("IP6", "to prefix saddr daddr version dscp length flowlabel hoplimit nexthdr addr"),
    ("LIMIT", "name packets bytes rate burst second minute week over"),
    ("META", "length protocol"),
    ("POLICY", "performance memory"),
    ("QUOTA", "name bytes over used until"),
    ("SCTP", "length checksum sport dport chunk vtag"),
    ("TCP", """length checksum sport dport sequence reserved ackseq doff window urgptr echo eol maxseg
        mss nop noop sack sack0 sack1 sack2 sack3 sack-permitted sack-perm timestamp fastopen
        mptcp md5sig left right count tsval tsecr subtype options option"""),
    ("TYPE", "dscp protocol classid"),
    ("VLAN", "id cfi dei pcp"),
    ("CMD_EXPORT", "xml json vm"),
    ("CMD_IMPORT", "xml json vm"),
    ("CMD_LIST", "chains sets tables meters flowtables limits maps secmarks synproxys hooks counters quotas"),
    ("CMD_MONITOR", "chains sets tables rules trace xml json vm"),
    ("CMD_RESET", "counters quotas"),
    ("EXPR_AH", "hdrlength nexthdr reserved spi sequence"),
    ("EXPR_COMP", "nexthdr cpi"),
    ("EXPR_DCCP", "sport dport"),
    ("EXPR_DST", "hdrlength nexthdr"),
    ("EXPR_ESP", "spi sequence"),
    ("EXPR_FIB", "saddr daddr"),
    ("EXPR_FRAG", "id frag-off nexthdr reserved reserved2 more-fragments"),
    ("EXPR_HASH", "seed mod offset"),
    ("EXPR_HBH", "hdrlength nexthdr"),
    ("EXPR_IPSEC", "saddr daddr spi reqid spnum in out"),
    ("EXPR_MH", "hdrlength checksum nexthdr reserved"),
    ("EXPR_NUMGEN", "inc mod offset"),
    ("EXPR_OSF", "name version ttl"),
    ("EXPR_QUEUE", "to num bypass fanout"),
    ("EXPR_RT", "hdrlength nexthdr addr nexthop seg-left mtu last-entry tag sid classid"),
    ("EXPR_SCTP_CHUNK", """length data init init-ack heartbeat heartbeat-ack abort shutdown shutdown-ack
        error cookie-echo cookie-ack ecne cwr shutdown-complete asconf-ack forward-tsn asconf tsn
        sack stream ssn ppid init-tag a-rwnd num-outbound-streams num-inbound-streams initial-tsn
        cum-tsn-ack num-gap-ack-blocks num-dup-tsns lowest-tsn seqno new-cum-tsn"""),
    ("EXPR_SOCKET", "transparent wildcard cgroupv2 level"),
    ("EXPR_TH", "sport dport"),
    ("EXPR_UDP", "length checksum sport dport"),
    ("EXPR_UDPLITE", "checksum csumcov sport dport"),
    ("STMT_DUP", "to"),
    ("STMT_FWD", "to"),
    ("STMT_LOG", "prefix snaplen queue-threshold level group"),
    ("STMT_NAT", "to prefix fully-random persistent port addr"),
    ("STMT_REJECT", "with icmpx"),
    ("STMT_SYNPROXY", "name wscale maxseg mss timestamp sack-permitted sack-perm"),
    ("STMT_TPROXY", "to"),
)}
# Naming an unexpected word, the mock does not follow the scanner's start conditions:
# it takes the words of the scopes its own statements and commands open for keywords.
NAMED_KEYWORDS = frozenset().union(*(SCANNER_KEYWORDS[scope] for scope in (
    "", "AT", "CT", "COUNTER", "ICMP", "IP", "IP6", "LIMIT", "META", "POLICY", "TCP", "TYPE", "CMD_LIST",
    "EXPR_FIB", "EXPR_TH", "EXPR_UDP", "STMT_LOG", "STMT_NAT", "STMT_REJECT")))
# parser_bison.y type_identifier and data_type_atom_expr: the keywords a set's `type` takes
TYPE_KEYWORDS = ("mark", "dscp", "ecn", "classid", "time")
STRING_EXPECTED = "string or quoted string or string with a trailing asterisk"  # the grammar's `string`
OPERATOR_NAMES = {",": "comma", ";": "semicolon", ":": "colon", "{": "'{'", "}": "'}'", "[": "'['",
                  "]": "']'", "(": "'('", ")": "')'", "|": "'|'", "$": "'$'", "=": "'='"}
WORD_OPERATORS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "and": "&",
                  "or": "|", "not": "!", "xor": "^", "lshift": "<<", "rshift": ">>"}
RELATIONAL_OPS = ("==", "!=", "<", ">", "<=", ">=")
COMMAND_OBJECTS = {"add": ("table", "chain", "rule", "set", "map", "element", "flowtable"),
                   "create": ("table", "chain", "set", "map", "element", "flowtable"), "insert": ("rule",),
                   "replace": ("rule",), "delete": ("table", "chain", "rule", "set", "map", "element", "flowtable"),
                   "flush": ("table", "chain", "set", "map"),
                   "list": ("table", "chain", "set", "map", "meter", "flowtable"),
                   "reset": ()}
# what `delete` also finds by handle (parser_bison.y table_or_id_spec, chain_or_id_spec, set_or_id_spec)
DELETE_BY_HANDLE = ("table", "chain", "set")
WHOLE_RULESET_OBJECTS = {"list": ("ruleset", "tables", "chains", "sets", "maps", "meters", "flowtables"),
                         "flush": ("ruleset",)}
_PRINT = PrintCtx()  # for printing `typeof` expressions back


# ------------------------------------------------------------------ errors

@dataclass
class Source:
    """One input: a file (`name` set) or the command line."""

    name: str | None
    lines: list[str]

    def __deepcopy__(self, memo):  # an input never changes: every location shares it
        return self


@dataclass
class Location:
    source: Source
    line: int  # 1-based
    first: int  # 1-based column of the first character
    last: int  # column of the last character

    def to(self, other: "Location") -> "Location":
        """The span from this token to `other` (on this line)."""
        last = other.last if other.line == self.line else len(self.source.lines[self.line - 1])
        return Location(self.source, self.line, self.first, max(last, self.first))


class NftError(Exception):
    """An nft error record (src/erec.c): message, location, related locations;
    `origin` names where one without a location comes from (`netlink: `)."""

    def __init__(self, message: str, loc: Location | None = None, related: tuple = (), origin: str = ""):
        super().__init__(message)
        self.message, self.loc, self.related, self.origin = message, loc, related, origin

    def render(self) -> str:
        loc = self.loc
        if loc is None:
            return f"{self.origin}Error: {self.message}"
        prefix = f"{loc.source.name}:{loc.line}:{loc.first}-{loc.last}: " if loc.source.name else ""
        lines = loc.source.lines
        line = lines[loc.line - 1] if loc.line <= len(lines) else ""
        if not line and loc.line == len(lines) and loc.line > 1 and loc.first == 1:
            line = lines[loc.line - 2]  # the end of the input: nft shows the last line it read
        marks = [" " if i >= len(line) or line[i] != "\t" else "\t" for i in range(max(loc.last, len(line)))]
        for other in self.related:
            if other.line == loc.line:
                for i in range(other.first - 1, other.last):
                    marks[i] = "~"
        for i in range(loc.first - 1, loc.last):
            marks[i] = "^"
        return f"{prefix}Error: {self.message}\n{line}\n{''.join(marks).rstrip()}"


class NftErrors(NftError):
    """Several error records, printed one after the other as nft prints them."""

    def __init__(self, errors: list[NftError]):
        super().__init__(errors[0].message, errors[0].loc, errors[0].related, errors[0].origin)
        self.errors = errors

    def render(self) -> str:
        return "\n".join(err.render() for err in self.errors)


class _InputEnded(Exception):
    """Recovery reached the end of the input: nothing more to parse."""


# ------------------------------------------------------------------ scanner

@dataclass
class Token:
    kind: str  # num, str, qstr, astr, op, nl, eof
    text: str
    loc: Location
    value: int | None = None

    def name(self) -> str:
        """The token as bison names it in "unexpected X"."""
        if self.kind == "str":
            return self.text if self.text in NAMED_KEYWORDS else "string"
        return {"num": "number", "qstr": "quoted string", "astr": "string with a trailing asterisk",
                "nl": "newline", "eof": "end of file"}.get(self.kind) or OPERATOR_NAMES.get(self.text, self.text)

    def name_in(self, scope: str) -> str:
        """The token as bison names it when the scanner read it in start condition `scope`."""
        if self.kind != "str":
            return self.name()
        keyword = self.text in SCANNER_KEYWORDS[""] or self.text in SCANNER_KEYWORDS[scope]
        return self.text if keyword else "string"

    def is_word(self, *words: str) -> bool:
        return self.kind == "str" and (not words or self.text in words)


_HEX4 = r"[0-9a-fA-F]{1,4}"
_HEX4_WORD = re.compile(_HEX4)
_IP4 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
_HEX_DIGITS = string.hexdigits
_NAME_START = string.ascii_letters + "_."
# (kind, pattern, the ASCII characters a match can start with, as the pattern reads)
_SCAN = [
    ("op", re.compile(r"==|!=|<=|>=|<<|>>|[,.:;{}\[\]()^&|!/\-*@$=+<>]"), ",.:;{}[]()^&|!/-*@$=+<>"),
    ("str", re.compile(rf"(?:{_HEX4}:){{7}}{_HEX4}"
                       rf"|(?:{_HEX4}(?::{_HEX4})*)?::(?:(?:{_HEX4}:)*{_IP4}|{_HEX4}(?::{_HEX4})*)?"),
     _HEX_DIGITS + ":"),
    ("str", re.compile(r"(?:[0-9a-fA-F]{1,2}:){5}[0-9a-fA-F]{1,2}"), _HEX_DIGITS),
    ("str", re.compile(_IP4), string.digits),
    ("str", re.compile(r"8021(?:q|ad)(?![\w.])"), "8"),  # the ether_type symbols that start with a digit
    ("str", re.compile(r"(?=\d)(?:\d+d)?(?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?"), string.digits),
    ("num", re.compile(r"0[xX][0-9a-fA-F]+|\d+"), string.digits),
    ("qstr", re.compile(r'"[^"]*"'), '"'),
    ("astr", re.compile(r"(?:[a-zA-Z_.][a-zA-Z0-9/\-_.]*)?\\?\*"), _NAME_START + "\\*"),
    ("str", re.compile(r"[a-zA-Z_.][a-zA-Z0-9/\-_.]*"), _NAME_START),
]
_OCTAL_MISFIT = re.compile(r"0\d*[89]\d*")  # a leading 0 makes it octal: `08` and `019` are no numbers
# the patterns worth trying at an ASCII character; any other character tries them all (\d is Unicode's)
_SCAN_AT = {chr(c): [(kind, pattern) for kind, pattern, first in _SCAN if chr(c) in first] for c in range(128)}
_SCAN_ALL = [(kind, pattern) for kind, pattern, _ in _SCAN]


def scan(text: str, source: Source) -> list[Token]:
    """The flex scanner: longest match wins, earlier rules on a tie."""
    tokens, pos, line, col = [], 0, 1, 1
    while pos < len(text):
        ch = text[pos]
        if ch in " \t":
            pos, col = pos + 1, col + 1
            continue
        if text.startswith("\\\n", pos):
            pos, line, col = pos + 2, line + 1, 1
            continue
        if ch == "\n":
            tokens.append(Token("nl", "\n", Location(source, line, col, col)))
            pos, line, col = pos + 1, line + 1, 1
            continue
        if ch == "#":
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            col += end - pos
            pos = end
            continue
        best_kind, best_len = "junk", 1
        for kind, pattern in _SCAN_AT.get(ch, _SCAN_ALL):
            m = pattern.match(text, pos)
            if m and len(m.group()) > best_len - (best_kind == "junk"):
                best_kind, best_len = kind, len(m.group())
        word = text[pos:pos + best_len]
        loc = Location(source, line, col, col + best_len - 1)
        if best_kind == "num" and _OCTAL_MISFIT.fullmatch(word):  # strtoull() stops short: a STRING to nft
            tokens.append(Token("str", word, loc))
        elif best_kind == "num":
            tokens.append(Token("num", word, loc, int(word, 16) if word[:2].lower() == "0x" else
                                int(word, 8) if len(word) > 1 and word[0] == "0" else int(word)))
        elif best_kind == "qstr":
            tokens.append(Token("qstr", word[1:-1], loc))
        elif best_kind == "str" and word in WORD_OPERATORS:
            tokens.append(Token("op", WORD_OPERATORS[word], loc))
        else:
            tokens.append(Token(best_kind if best_kind != "junk" else "op", word, loc))
        pos, col = pos + best_len, col + best_len
    tokens.append(Token("eof", "", Location(source, line, col, col)))
    return tokens


# ------------------------------------------------------------------ commands

@dataclass
class ChainSpec:
    """`type T hook H [device D] priority P;` of a base chain."""

    type: str
    hook: str
    priority: int
    devices: list[str] = field(default_factory=list)
    loc: Location | None = None
    type_loc: Location | None = None


@dataclass
class FlowtableSpec:
    """A flowtable_block (struct flowtable of nftables' include/rule.h): the hook
    (None: none given, nft sends hook 0 priority 0, mnl_nft_flowtable_add()),
    its devices as written, and the `counter` and `flags offload` flags."""

    name: str
    hook: str | None = None
    priority: int = 0
    devices: list[str] | None = None
    devices_loc: Location | None = None
    counter: bool = False
    offload: bool = False
    loc: Location | None = None


@dataclass
class RuleSpec:
    stmts: list[Stmt]
    comment: Comment | None
    loc: Location


@dataclass
class ElementSyntax:
    """A set element as written, resolved once the set's types are known."""

    key: list  # one Sym per concatenated field
    data: object = None  # a map's value: a Sym, a list of Syms (concatenated), or a Verdict
    timeout: float | None = None
    loc: Location | None = None


@dataclass
class SetSpec:
    name: str
    is_map: bool
    key_types: list = field(default_factory=list)
    data_type: object = None
    typeof: str | None = None
    data_typeof: str | None = None
    flags: set = field(default_factory=set)
    timeout: float | None = None
    gc_interval: float | None = None
    size: int | None = None
    auto_merge: bool = False
    comment: str | None = None
    elements: list[ElementSyntax] | None = None
    loc: Location | None = None
    # where nft points at the elements as a whole: the name in a table block, `{` to the last item in `add set`
    elements_loc: Location | None = None


@dataclass
class Command:
    """One command: op (add, create, insert, replace, delete, flush, list) on obj."""

    op: str
    obj: str  # ruleset, table, chain, rule, set, map, element, tables, chains, sets, maps
    loc: Location
    family: str = "ip"
    table: str | None = None
    name: str | None = None  # chain or set name
    handle: int | None = None
    position: int | None = None
    index: int | None = None
    chain: ChainSpec | None = None
    policy: str | None = None
    rule: RuleSpec | None = None
    set: SetSpec | None = None
    elements: list[ElementSyntax] | None = None
    family_given: bool = False
    locs: dict = field(default_factory=dict)  # table, name, handle, position: token locations
    obj_kind: str | None = None  # a stateful object's kind (counter, quota, ..., ct expectation)
    object: object = None  # the object an `add counter|quota|...` creates (nft_objects)
    flowtable: FlowtableSpec | None = None  # add/create flowtable's block, delete's devices


@dataclass
class ParseCtx:
    """What evaluation needs from the target: device indexes for `iif`/`oif`."""

    devices: dict = field(default_factory=dict)  # name -> ifindex


# ------------------------------------------------------------------ values

@dataclass
class Sym:
    """An unresolved value: kind value (tok), range (low, high), prefix (tok, plen)."""

    kind: str
    parts: tuple
    loc: Location


def resolve(sym: Sym, dtype) -> Value | Range | Prefix:
    """Evaluate a symbol against its type (nft's expr_evaluate_symbol)."""
    if sym.kind == "value":
        return Value(_parse(sym.parts[0], dtype))
    if sym.kind == "or":  # `syn | ack`: a constant binop, folded by evaluation
        value = 0
        for tok in sym.parts:
            value |= _parse(tok, dtype)
        return Value(value)
    if sym.kind == "range":
        low, high = (_parse(t, dtype) for t in sym.parts)
        if low > high:  # evaluate.c expr_evaluate_range(): equal ends are a range of one
            raise NftError("Range has zero or negative size", sym.loc)
        return Range(low, high)
    if dtype is types.ifname:  # nft compares ceil(plen / 8) bytes and lists what its printer makes of them
        raise NftError("a prefix of an interface name is not modelled by the mock kernel", sym.loc)
    addr, plen = _parse(sym.parts[0], dtype), sym.parts[1].value  # a prefix
    if plen > dtype.size:
        raise NftError(f"Prefix length {plen} is invalid for type of {dtype.size} bits width", sym.loc)
    prefix = Prefix(addr, plen)
    prefix.addr &= prefix.mask(dtype.size)
    return prefix


def _parse(tok: Token, dtype):
    try:
        return dtype.parse(tok.value if tok.kind == "num" and dtype is not types.ifname else tok.text)
    except DatatypeError as err:
        raise NftError(str(err), tok.loc) from None


def as_interval(value, bits: int) -> tuple[int, int]:
    if isinstance(value, Range):
        return value.low, value.high
    if isinstance(value, Prefix):
        return value.addr, value.addr | (((1 << bits) - 1) >> value.plen)
    return value.value, value.value


def resolve_elements(syntax: list[ElementSyntax], nset: NftSet, verdict_fn=None,
                     need_data: bool = True, not_a_map: NftError | None = None) -> list[Element]:
    """Typed elements for a set or map (intervals as [low, high]); elements
    to delete need no data (the kernel finds them by key). An element with
    data for a set is `not_a_map` (by default, as in a rule's anonymous set:
    "mapping outside of map context" at the element)."""
    out = []
    for elem in syntax:
        if elem.data is not None and not nset.is_map:
            raise not_a_map or NftError("mapping outside of map context", elem.loc)
        catchall = elem.key[0].kind == "catchall"
        if len(elem.key) != len(nset.key_types) and not catchall:
            raise NftError("datatype mismatch, set element does not match the set key", elem.loc)
        keys = [] if catchall else [resolve(sym, dtype) for sym, dtype in zip(elem.key, nset.key_types)]
        if nset.is_map and elem.data is None and need_data:
            if nset.data_type != "verdict":  # the kernel's nft_add_set_elem(): a map element needs data
                raise NftError("Could not process rule: Invalid argument", elem.loc)
            raise NftError("set element is missing a value for this map", elem.loc)
        data = _resolve_data(elem.data, nset, verdict_fn, elem.loc) if nset.is_map and elem.data is not None else None
        if catchall:
            out.append(Element(CATCHALL, CATCHALL if nset.interval else None, data, elem.timeout))
        elif nset.interval and len(keys) > 1:  # nft_set_pipapo: a range per field
            bounds = [as_interval(k, t.size) for k, t in zip(keys, nset.key_types)]
            out.append(Element(tuple(b[0] for b in bounds), tuple(b[1] for b in bounds), data, elem.timeout))
        elif nset.interval:
            low, high = as_interval(keys[0], nset.key_types[0].size)
            out.append(Element(low, high, data, elem.timeout))
        elif any(not isinstance(k, Value) for k in keys):
            raise NftError("Set member cannot be range, missing interval flag on declaration", elem.loc)
        else:
            key = tuple(k.value for k in keys) if len(keys) > 1 else keys[0].value
            out.append(Element(key, None, data, elem.timeout))
    return out


def element_error(err: SetError, syntax: list[ElementSyntax], whole: Location) -> NftError:
    """A set error where nft points: at the element (the one it clashes with
    underlined), else at `whole`."""
    if err.index is None:
        return NftError(str(err), whole)
    related = () if err.related is None else (syntax[err.related].loc,)
    return NftError(str(err), syntax[err.index].loc, related)


def _resolve_data(sym, nset: NftSet, verdict_fn, elem_loc: Location | None = None):
    dtype = nset.data_type
    if dtype == "verdict":
        return verdict_fn(sym) if verdict_fn else sym
    syms = sym if isinstance(sym, list) else [sym]
    if isinstance(dtype, types.IntervalType) and len(syms) == 1:
        if syms[0].kind == "value" and elem_loc is not None:  # nft sends it single: the wrong data length
            raise NftError("Could not process rule: Invalid argument", elem_loc)
        return as_interval(resolve(sym, dtype.base), dtype.size)
    parts = dtype.parts if isinstance(dtype, types.ConcatType) else [dtype]
    if len(syms) != len(parts):
        raise NftError(f"datatype mismatch, map data has type {dtype.desc}", syms[0].loc.to(syms[-1].loc))
    if isinstance(parts[0], types.IntervalType):  # each part a range: the data twice as long
        if all(one.kind == "value" for one in syms):  # nft sends this one's data single: the wrong length
            raise NftError("Could not process rule: Invalid argument", elem_loc)
        return tuple(as_interval(resolve(one, part.base), part.size) for one, part in zip(syms, parts))
    for one in syms:
        if one.kind != "value":  # an address range for NAT is `interval` data; nothing else is modelled
            raise NftError("a range or prefix as map data is not modelled by the mock kernel", one.loc)
    values = [resolve(one, part).value for one, part in zip(syms, parts)]
    return tuple(values) if len(values) > 1 else values[0]


# ------------------------------------------------------------------ parser

class Parser:
    def __init__(self, text: str, name: str | None, ctx: ParseCtx):
        self.source = Source(name, text.split("\n"))
        self.tokens = scan(text, self.source)
        self.pos = 0
        self.iface_type = types.IfaceIndexType(ctx.devices)
        self.defines: dict[str, list[Token]] = {}
        self.commands: list[Command] = []
        self.anon_sets = 0
        self.scope = ""  # the scanner's start condition a command keeps open: CMD_LIST in `list`
        self.rule_stmts: list[Stmt] = []
        self.syntax_errors: list[NftError] = []
        self.evaluation_errors: list[NftError] = []

    # -- tokens

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.pos + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.tokens[self.pos]  # the parser's most frequent call: no property, the rarer test first
        return tok.text in texts and (tok.kind == "str" or tok.kind == "op")

    def accept(self, *texts: str) -> Token | None:
        return self.next() if self.at(*texts) else None

    def expect(self, text: str, expecting: str | None = None) -> Token:
        if not self.at(text):
            raise self.unexpected(expecting)
        return self.next()

    def unexpected(self, expecting: str | None = None, scope: str | None = None) -> NftError:
        """Bison's syntax error at the current token (read in start condition `scope`
        when the caller knows it)."""
        self._expand_variable()
        tok = self.tok
        message = f"syntax error, unexpected {tok.name() if scope is None else tok.name_in(scope)}"
        if expecting:
            message += f", expecting {expecting}"
        return NftError(message, tok.loc)

    def keyword(self, words: tuple[str, ...], scope: str) -> Token:
        """The next token, one of a grammar rule's alternatives `words`; else bison's
        syntax error, naming the alternatives when there are at most 4 (YYARGS_MAX)."""
        self._expand_variable()
        if self.tok.kind == "str" and self.tok.text in words:
            return self.next()
        expecting = " or ".join(TOKEN_ALIASES.get(word, word) for word in words) if len(words) <= 4 else None
        raise self.unexpected(expecting, scope)

    def header_field(self, head: Token) -> Token:
        """The field after header keyword `head` (HEADER_FIELDS); `ip option`'s type
        is read too, as no option is modelled."""
        scope, fields = HEADER_FIELDS[head.text]
        fld = self.keyword(fields, scope)
        if head.text == "ip" and fld.text == "option":
            fld = self.keyword(IP_OPTIONS, scope)
            raise NftError(f"ip option {fld.text} is not modelled by the mock kernel", head.loc.to(fld.loc))
        if head.text == "arp" and fld.text in ("saddr", "daddr"):  # arp_hdr_field: SADDR ETHER, DADDR IP...
            address = self.keyword(("ether", "ip"), "ARP")
            fld = replace(fld, text=f"{fld.text} {address.text}", loc=fld.loc.to(address.loc))
        if FIELD_ALIASES.get((head.text, fld.text), fld.text) not in PAYLOAD_FIELDS.get(head.text, ()):
            raise NftError(f"{head.text} {fld.text} is not modelled by the mock kernel", head.loc.to(fld.loc))
        return fld

    def is_name(self, tok: Token, scope: str = "") -> bool:
        """A STRING to nft: a word that is no keyword in force (SCANNER_KEYWORDS);
        a quoted string is not one."""
        return tok.kind == "str" and tok.text not in SCANNER_KEYWORDS[""] \
            and tok.text not in SCANNER_KEYWORDS.get(scope or self.scope, ())

    def identifier(self, expecting: str | None = "string", scope: str = "") -> Token:
        """A name: the grammar's `identifier`, a STRING (table, chain, set, jump
        target, variable); `scope` is a start condition the name is scanned in."""
        self._expand_variable()
        if self.is_name(self.tok, scope):
            return self.next()
        raise self.unexpected(expecting)

    def string(self, expecting: str | None = STRING_EXPECTED) -> Token:
        """The grammar's `string`: a STRING, quoted string or asterisk string
        (comments, log prefixes, devices)."""
        self._expand_variable()
        if self.tok.kind in ("qstr", "astr") or self.is_name(self.tok):
            return self.next()
        raise self.unexpected(expecting)

    def word(self) -> Token:
        """A word the caller checks itself against the keywords it takes (a
        header field, a meta or ct key, a unit)."""
        self._expand_variable()
        if self.tok.kind == "str":
            return self.next()
        raise self.unexpected()

    def number(self) -> Token:
        self._expand_variable()
        if self.tok.kind != "num":
            raise self.unexpected("number")
        return self.next()

    def operand(self) -> Token:
        """A value the caller parses: bison's syntax error where the statement ends instead."""
        if self.at_end_of_stmt():
            raise self.unexpected()
        return self.next()

    def at_end_of_stmt(self) -> bool:
        return self.tok.kind in ("nl", "eof") or self.at(";", "}")

    def _expand_variable(self) -> None:
        """`$name`: splice the tokens of its `define` in place."""
        while self.at("$"):
            dollar = self.next()
            name = self.tok
            if not self.is_name(name):
                raise self.unexpected("string")
            if name.text not in self.defines:
                raise NftError(f"unknown identifier '{name.text}'", dollar.loc.to(name.loc))
            self.pos -= 1
            self.tokens[self.pos:self.pos + 2] = self.defines[name.text]

    # -- input

    def parse(self) -> list[Command]:
        """Every line; a line with an error is skipped up to its separator, as
        bison's `error` rules do, and nft reports the syntax errors of the
        whole input, then the evaluation errors, in the order found."""
        try:
            while self.tok.kind != "eof":
                if self.tok.kind == "nl" or self.at(";"):
                    self.next()
                    continue
                try:
                    self.line()
                    if not (self.tok.kind in ("nl", "eof") or self.at(";")):
                        raise self.unexpected("end of file or newline or semicolon")
                except NftError as err:
                    self.recover(err, line_end=True)  # input's `error line_end`: to the newline
        except _InputEnded:
            pass
        errors = self.syntax_errors + self.evaluation_errors
        if len(errors) > 1:
            raise NftErrors(errors)
        if errors:
            raise errors[0]
        return self.commands

    def recover(self, err: NftError, line_end: bool = False) -> None:
        """parser_bison.y's `error stmt_separator` in a block (`error line_end`
        for a line of the input): note the error, skip to the end of the
        statement (of the line) and go on; what the mock does not model stops it."""
        if "not modelled" in err.message or "not supported by the mock" in err.message:
            raise err
        (self.syntax_errors if err.message.startswith("syntax error") else self.evaluation_errors).append(err)
        while not (self.tok.kind in ("nl", "eof") or (self.at(";") and not line_end)):
            self.next()
        if self.tok.kind == "eof":
            raise _InputEnded

    def line(self) -> None:
        tok = self.tok
        if tok.is_word("define", "redefine"):
            self.define()
        elif tok.is_word("undefine"):
            self.next()
            self.defines.pop(self.identifier().text, None)
        elif tok.is_word("include"):
            raise NftError("include is not supported by the mock kernel: pass the ruleset on stdin (nft -f -)",
                           tok.loc)
        elif tok.is_word("add", "create", "insert", "replace", "delete", "flush", "list", "reset"):
            self.command(self.next().text, tok)
        elif tok.is_word("table", "chain", "rule", "set", "map", "element"):
            self.command("add", tok)
        elif tok.is_word("get", "rename", "monitor", "describe", "import", "export", "destroy"):
            raise NftError(f"nft {tok.text} is not modelled by the mock kernel", tok.loc)
        else:
            raise self.unexpected()

    def define(self) -> None:
        self.next()
        name = self.identifier()
        self.expect("=")
        start, depth = self.pos, 0
        while not (self.tok.kind == "eof" or (depth == 0 and (self.tok.kind == "nl" or self.at(";")))):
            depth += self.at("{") - self.at("}")
            self.next()
        self.defines[name.text] = self.tokens[start:self.pos]

    # -- commands

    def command(self, op: str, start: Token) -> None:
        self.scope = "CMD_LIST" if op == "list" else ""
        self._expand_variable()
        obj_tok = self.tok
        obj = obj_tok.text if obj_tok.kind == "str" else None
        if obj in WHOLE_RULESET_OBJECTS.get(op, ()):  # `list ruleset|tables|... [family]`, `flush ruleset`
            self.next()
            cmd = Command(op, obj, start.loc)
            self.family_spec(cmd)
            self.finish(cmd, start)
            return
        if obj in LIST_KINDS and (op == "list" or op == "reset" and obj in ("counters", "quotas")):
            self.next()
            self.cmd_objects(op, obj, start)
            return
        if op in ("add", "create", "delete", "list", "reset"):
            kind = self.object_kind()
            if kind is not None and (op != "reset" or kind in ("counter", "quota")):
                self.cmd_object(op, kind, start)
                return
        if obj not in COMMAND_OBJECTS[op]:
            raise self.unexpected()
        self.next()
        handler = {"table": self.cmd_table, "chain": self.cmd_chain, "rule": self.cmd_rule,
                   "set": self.cmd_set, "map": self.cmd_set, "meter": self.cmd_set, "element": self.cmd_element,
                   "flowtable": self.cmd_flowtable}[obj]
        handler(op, obj, start)

    def finish(self, cmd: Command, start: Token) -> None:
        """The command's location runs to the newline that ends it, as nft's does."""
        end = self.tok if self.tok.kind == "nl" else self.tokens[self.pos - 1]
        cmd.loc = start.loc.to(end.loc)
        self.commands.append(cmd)
        self.scope = ""

    def family_spec(self, cmd: Command) -> None:
        self._expand_variable()
        tok = self.tok
        if tok.is_word(*FAMILIES):
            if tok.text not in MODELLED_FAMILIES:
                raise NftError(f"the {tok.text} family is not modelled by the mock kernel", tok.loc)
            self.next()
            cmd.family, cmd.family_given = tok.text, True

    def table_spec(self, cmd: Command) -> None:
        self.family_spec(cmd)
        name = self.identifier()
        cmd.table, cmd.locs["table"] = name.text, name.loc

    def handle_spec(self, cmd: Command) -> bool:
        if self.at("handle"):
            self.next()
            num = self.number()
            cmd.handle, cmd.locs["handle"] = num.value, num.loc
            return True
        return False

    def cmd_table(self, op: str, obj: str, start: Token) -> None:
        cmd = Command(op, "table", start.loc)
        self.family_spec(cmd)
        if op == "delete" and self.at("handle"):
            self.handle_spec(cmd)
            self.finish(cmd, start)
            return
        name = self.identifier(_name_expected(op, "table"))
        cmd.table, cmd.locs["table"] = name.text, name.loc
        if self.at("{") and op in ("add", "create"):
            self.finish(cmd, start)
            self.table_block(cmd)
            return
        self.finish(cmd, start)

    def table_block(self, table: Command) -> None:
        """`table F T { chain ... counter ... set ... map ... }`: expanded as
        nft_cmd_expand() does, chains first, then objects, then sets, then each
        chain's rules."""
        self.expect("{")
        chains, objects, sets, flowtables, rules = [], [], [], [], []
        while not self.at("}"):
            try:
                self.table_item(table, chains, objects, sets, rules, flowtables)
            except NftError as err:
                self.recover(err)  # table_block's `error stmt_separator`
        self.next()
        self.commands += chains + objects + sets + flowtables + rules

    def table_item(self, table: Command, chains: list, objects: list, sets: list, rules: list,
                   flowtables: list) -> None:
        """One item of a table block, with its separator."""
        self._expand_variable()
        tok = self.tok
        if tok.kind == "nl" or self.at(";"):
            self.next()
        elif tok.is_word("chain"):
            self.next()
            chain, chain_rules = self.chain_declaration(table)
            chains.append(chain)
            rules += chain_rules
            self.separator()
        elif tok.is_word("set", "map"):
            self.next()
            sets.append(self.set_declaration(table, tok.text == "map", tok))
            self.separator()
        elif tok.is_word("define", "redefine"):
            self.define()
        elif tok.is_word("comment"):
            self.next()
            self.string()
        elif tok.is_word("counter", "quota", "limit", "synproxy", "ct"):
            kind = self.object_kind()
            if kind is None:
                raise self.unexpected()
            objects.append(self.object_declaration(table, kind, tok))
            self.separator()
        elif tok.is_word("flowtable"):
            self.next()
            name = self.identifier()
            cmd = Command("add", "flowtable", name.loc, table.family, table.table, name.text, family_given=True)
            cmd.locs.update(table=table.locs["table"], name=name.loc)
            cmd.flowtable = self.flowtable_block(name)
            cmd.loc = name.loc.to(cmd.flowtable.loc)
            flowtables.append(cmd)
            self.separator()
        elif tok.is_word("flags", "secmark"):
            raise NftError(f"table {tok.text} is not modelled by the mock kernel", tok.loc)
        else:
            raise self.unexpected()

    def separator(self) -> None:
        if not (self.tok.kind == "nl" or self.at(";")):
            raise self.unexpected("newline or semicolon")

    def chain_declaration(self, table: Command) -> tuple[Command, list[Command]]:
        name = self.identifier()
        cmd = Command("add", "chain", name.loc, table.family, table.table, name.text, family_given=True)
        cmd.locs.update(table=table.locs["table"], name=name.loc)
        rules = self.chain_block(cmd)
        return cmd, rules

    def chain_block(self, cmd: Command) -> list[Command]:
        open_brace = self.expect("{")
        rules = []
        while not self.at("}"):
            self._expand_variable()
            tok = self.tok
            if tok.kind == "nl" or self.at(";"):
                self.next()
                continue
            if tok.is_word("type", "policy"):
                try:
                    self.chain_property(cmd, tok)
                    if not (self.tok.kind == "nl" or self.at(";")):
                        raise self.unexpected("newline or semicolon")
                except NftError as err:
                    self.recover(err)  # chain_block's `error stmt_separator`
                    continue
            elif tok.is_word("devices", "flags", "comment"):
                raise NftError(f"chain {tok.text} is not modelled by the mock kernel", tok.loc)
            else:
                rule_cmd = Command("add", "rule", tok.loc, cmd.family, cmd.table, cmd.name, family_given=True)
                rule_cmd.locs.update(cmd.locs)
                try:
                    rule_cmd.rule = self.rule(cmd.family, in_block=True)
                    # chain_block: every item ends with a stmt_separator, even before '}'
                    if not (self.tok.kind == "nl" or self.at(";")):
                        raise self.unexpected("newline or semicolon")
                except NftError as err:
                    self.recover(err)  # chain_block's `error stmt_separator`
                    continue
                rule_cmd.loc = rule_cmd.rule.loc
                rules.append(rule_cmd)
            # chain_block: every item ends with a stmt_separator, even before '}'
            if not (self.tok.kind == "nl" or self.at(";")):
                raise self.unexpected("newline or semicolon")
        close = self.next()
        if cmd.chain and cmd.family == "netdev" and not cmd.chain.devices:
            raise NftError("Missing `device' in this chain definition", open_brace.loc.to(close.loc))
        return rules

    def chain_property(self, cmd: Command, tok: Token) -> None:
        """`type T hook H [device D] priority P` or `policy accept|drop` in a chain block."""
        if tok.is_word("type"):
            cmd.chain = self.hook_spec(cmd)
            return
        self.next()
        self._expand_variable()
        if not self.at("accept", "drop"):
            raise self.unexpected("accept or drop or '$'")
        value = self.next()
        cmd.policy, cmd.locs["policy"] = value.text, tok.loc.to(value.loc)

    def hook_spec(self, cmd: Command) -> ChainSpec:
        start = self.next()
        type_tok = self.identifier()
        if type_tok.text not in ("filter", "nat", "route"):
            raise NftError("unknown chain type", type_tok.loc)
        self.expect("hook")
        hook_tok = self.identifier()
        if hook_tok.text not in ALL_HOOKS:
            raise NftError("unknown chain hook", hook_tok.loc)
        if hook_tok.text not in HOOKS[cmd.family]:
            raise NftError(f"The {cmd.family} family does not support this hook", hook_tok.loc)
        spec = ChainSpec(type_tok.text, hook_tok.text, 0, type_loc=type_tok.loc)
        if self.accept("device"):
            spec.devices.append(self.string(f"{STRING_EXPECTED} or '$'").text)
        prio_tok = self.expect("priority", "priority")
        spec.priority = self.priority(cmd.family, hook_tok.text, prio_tok)
        spec.loc = start.loc.to(self.tokens[self.pos - 1].loc)
        return spec

    def priority(self, family: str, hook: str, prio_tok: Token) -> int:
        """`priority N`, or a standard name with an optional +/- offset."""
        self._expand_variable()
        if self.at("-"):
            self.next()
            return -self.number().value
        if self.tok.kind == "num":
            return self.next().value
        name = self.identifier(expecting=None)
        base = std_prio_lookup(name.text, family, hook)
        offset = 0
        if self.at("+", "-"):
            sign = -1 if self.next().text == "-" else 1
            offset = sign * self.number().value
        if base is None:
            raise NftError("invalid priority expression value in this context.",
                           prio_tok.loc.to(self.tokens[self.pos - 1].loc))
        return base + offset

    def cmd_chain(self, op: str, obj: str, start: Token) -> None:
        cmd = Command(op, "chain", start.loc)
        self.table_spec(cmd)
        if op == "delete" and self.handle_spec(cmd):
            self.finish(cmd, start)
            return
        name = self.identifier(_name_expected(op, "chain"))
        cmd.name, cmd.locs["name"] = name.text, name.loc
        rules = self.chain_block(cmd) if self.at("{") and op in ("add", "create") else []
        self.finish(cmd, start)
        self.commands += rules

    def cmd_rule(self, op: str, obj: str, start: Token) -> None:
        cmd = Command(op, "rule", start.loc)
        self.table_spec(cmd)
        name = self.identifier()
        cmd.name, cmd.locs["name"] = name.text, name.loc
        if op == "delete":
            if not self.handle_spec(cmd):
                raise self.unexpected("handle")
            self.finish(cmd, start)
            return
        if op == "replace":
            if not self.handle_spec(cmd):
                raise self.unexpected("handle")
        elif self.at("handle", "position"):
            kw = self.next()
            num = self.number()
            cmd.position = num.value
            cmd.locs["position"] = num.loc if kw.text == "handle" else kw.loc.to(num.loc)
        elif self.at("index"):
            kw = self.next()
            num = self.number()
            cmd.index, cmd.locs["position"] = num.value, kw.loc.to(num.loc)
        cmd.rule = self.rule(cmd.family)
        self.finish(cmd, start)

    def cmd_flowtable(self, op: str, obj: str, start: Token) -> None:
        """parser_bison.y add_cmd/create_cmd/delete_cmd/list_cmd FLOWTABLE: `[family] table
        name`, for add and create a flowtable_block, for delete an optional one (its
        devices leave the flowtable: nft_delflowtable_hook())."""
        cmd = Command(op, "flowtable", start.loc)
        self.table_spec(cmd)
        if op == "delete" and self.handle_spec(cmd):
            self.finish(cmd, start)
            return
        name = self.identifier()
        cmd.name, cmd.locs["name"] = name.text, name.loc
        if op in ("add", "create") or (op == "delete" and self.at("{")):
            cmd.flowtable = self.flowtable_block(name)
        self.finish(cmd, start)

    def flowtable_block(self, name: Token) -> FlowtableSpec:
        """parser_bison.y flowtable_block: `{ hook HOOK prio_spec; devices = { DEV, ... } | $VAR;
        counter flags offload; }` in any order, each item but `counter` ending with a
        separator; then evaluate.c flowtable_evaluate(): the hook a netdev hook
        (str2hooknum(NFPROTO_NETDEV)), the priority a number or a standard name valid
        at netdev ingress (`filter`, with an offset), as evaluate_priority() takes it."""
        open_brace = self.expect("{", "'{'")
        spec = FlowtableSpec(name.text)
        hook_error = None
        popped = False  # a YYERROR in an item's action: bison's recovery leaves the closing '}' unexpected
        while True:
            self.skip_separators()
            if self.at("}"):
                break
            try:
                self.flowtable_item(spec)
            except NftError as err:
                self.flowtable_recover(err)
                popped = popped or err.message == "unknown chain hook"
                continue
            if spec.hook is not None and spec.hook not in NETDEV_HOOK_NAMES:
                hook_error = f"invalid hook {spec.hook}"
        if popped:
            raise self.unexpected()
        spec.loc = open_brace.loc.to(self.tokens[self.pos - 1].loc)  # @5: the block, up to its last separator
        self.next()
        if hook_error is not None:
            raise NftError(hook_error, spec.loc)
        return spec

    def flowtable_item(self, spec: FlowtableSpec) -> None:
        """One item of a flowtable_block, with its separator."""
        self._expand_variable()
        if self.accept("hook"):
            hook = self.string()
            if hook.text not in ALL_HOOKS:
                raise NftError("unknown chain hook", hook.loc)
            prio_tok = self.expect("priority", "priority")
            try:
                priority = self.priority("netdev", "ingress", prio_tok)
            except NftError as err:
                if not err.message.startswith("invalid priority"):
                    raise
                raise NftError("invalid priority expression value.", err.loc) from None
            spec.hook, spec.priority = hook.text, priority
            self.separator()
        elif self.accept("devices"):
            self.expect("=", "'='")
            spec.devices, spec.devices_loc = self.flowtable_devices()
            self.separator()
        elif self.accept("counter"):
            spec.counter = True
        elif self.accept("flags"):
            self.keyword(("offload",), "")
            spec.offload = True
            self.separator()
        else:
            raise self.unexpected()

    def flowtable_recover(self, err: NftError) -> None:
        """common_block's `error stmt_separator` in a flowtable block: the error noted, the
        item skipped to its separator (the input ending first is parse()'s end-of-file error)."""
        if "not modelled" in err.message:
            raise err
        parser_error = err.message.startswith("syntax error") or err.message == "unknown chain hook"  # bison's own
        (self.syntax_errors if parser_error else self.evaluation_errors).append(err)
        while not (self.tok.kind in ("nl", "eof") or self.at(";")):
            self.next()
        if self.tok.kind == "eof":
            raise _InputEnded

    def flowtable_devices(self) -> tuple[list[str], Location]:
        """parser_bison.y flowtable_expr: `{ DEV, ... }` (strings, quoted strings or
        variables) or a variable holding one."""
        self._expand_variable()
        open_brace = self.tok
        if not self.accept("{"):
            raise self.unexpected("'{' or '$'")
        devices = []
        while True:
            self._expand_variable()
            if self.tok.kind not in ("qstr", "str"):
                raise self.unexpected("string or quoted string or '$'")
            devices.append(self.next().text)
            if self.accept(","):
                while self.tok.kind == "nl":  # flowtable_list_expr COMMA opt_newline
                    self.next()
                if not self.at("}"):
                    continue
            close = self.expect("}", "',' or '}'")
            return devices, open_brace.loc.to(close.loc)

    def cmd_set(self, op: str, obj: str, start: Token) -> None:
        cmd = Command(op, obj, start.loc)
        self.table_spec(cmd)
        if op == "delete" and obj in DELETE_BY_HANDLE and self.handle_spec(cmd):
            self.finish(cmd, start)
            return
        name = self.identifier(_name_expected(op, obj))
        cmd.name, cmd.locs["name"] = name.text, name.loc
        if op in ("add", "create"):
            table = Command("add", "table", start.loc, cmd.family, cmd.table)
            table.locs["table"] = cmd.locs["table"]
            cmd.set = self.set_declaration(table, obj == "map", start, name).set
        self.finish(cmd, start)

    def cmd_element(self, op: str, obj: str, start: Token) -> None:
        cmd = Command(op, "element", start.loc)
        self.table_spec(cmd)
        name = self.identifier()
        cmd.name, cmd.locs["name"] = name.text, name.loc
        cmd.elements = self.element_block()
        self.finish(cmd, start)

    # -- sets

    def set_declaration(self, table: Command, is_map: bool, start: Token, name: Token | None = None) -> Command:
        """A set or map's body, in a table block or (`name` given) in `add set|map`."""
        in_command = name is not None
        name = name or self.identifier()
        spec = SetSpec(name.text, is_map, loc=name.loc)
        cmd = Command("add", "map" if is_map else "set", name.loc, table.family, table.table, name.text,
                      family_given=True, set=spec)
        cmd.locs.update(table=table.locs["table"], name=name.loc)
        open_brace = self.expect("{")
        while not self.at("}"):
            self._expand_variable()
            tok = self.tok
            if tok.kind == "nl" or self.at(";"):
                self.next()
            elif tok.is_word("type"):
                self.next()
                spec.key_types = self.type_list()
                if is_map:
                    self.expect(":", "colon")
                    if self.accept("verdict"):
                        spec.data_type = "verdict"
                    elif self.accept("interval"):
                        spec.data_type = types.IntervalType(types.type_of(self.type_list()))
                    else:
                        spec.data_type = types.type_of(self.type_list())
            elif tok.is_word("typeof"):
                self.next()
                key = self.selector_chain(table.family)
                spec.typeof = key.text(_PRINT)
                spec.key_types = [p.dtype for p in key.parts] if isinstance(key, Concat) else [key.dtype]
                if is_map:
                    self.expect(":", "colon")
                    data = self.selector_chain(table.family)
                    spec.data_typeof = data.text(_PRINT)
                    spec.data_type = types.type_of([p.dtype for p in data.parts]) if isinstance(data, Concat) \
                        else data.dtype
            elif tok.is_word("flags"):
                self.next()
                spec.flags |= self.set_flags()
            elif tok.is_word("timeout"):
                self.next()
                spec.timeout = self.time_spec()
            elif tok.is_word("gc-interval"):
                self.next()
                spec.gc_interval = self.time_spec()
            elif tok.is_word("size"):
                self.next()
                spec.size = self.number().value
            elif tok.is_word("auto-merge"):
                self.next()
                spec.auto_merge = True
            elif tok.is_word("comment"):
                self.next()
                spec.comment = self.string().text
            elif tok.is_word("elements"):
                self.next()
                self.expect("=")
                spec.elements = self.element_block()
            elif tok.is_word("policy", "counter"):
                raise NftError(f"set {tok.text} is not modelled by the mock kernel", tok.loc)
            else:
                raise self.unexpected()
        spec.elements_loc = open_brace.loc.to(self.tokens[self.pos - 1].loc) if in_command else name.loc
        self.next()
        if not spec.key_types:
            raise NftError("set definition does not specify key", name.loc)
        return cmd

    def type_list(self) -> list:
        """`type T [. T ...]`, read in the scanner's TYPE scope: a STRING or one of
        TYPE_KEYWORDS."""
        out = []
        while True:
            self._expand_variable()
            if not (self.is_name(self.tok, "TYPE") or self.tok.is_word(*TYPE_KEYWORDS)):
                raise self.unexpected()
            tok = self.next()
            if tok.text not in types.SET_TYPES:
                raise NftError(f"unknown datatype {tok.text}", tok.loc)
            out.append(types.SET_TYPES[tok.text])
            if not self.accept("."):
                return out

    def set_flags(self) -> set:
        flags = set()
        while True:
            if not self.at("constant", "interval", "dynamic", "timeout"):
                raise self.unexpected("constant or interval or dynamic or timeout")
            flags.add(self.next().text)
            if not self.accept(","):
                return flags

    def time_spec(self) -> float:
        """A STRING: `1h30m`; a bare number is a syntax error, as in nft."""
        tok = self.identifier()
        m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", tok.text)
        if not m or not tok.text:
            raise NftError("Wrong time format, expecting [NUMd][NUMh][NUMm][NUMs][NUMms]", tok.loc)
        d, h, mi, s, ms = (int(g or 0) for g in m.groups())
        return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000

    def element_block(self) -> list[ElementSyntax]:
        """`{ e, e : v, a . b, low-high, addr/len }` (newlines allowed)."""
        self._expand_variable()
        self.expect("{")
        elements = []
        while True:
            while self.tok.kind == "nl":
                self.next()
            if self.at("}"):
                break
            self._expand_variable()
            if self.at("{"):  # a $variable holding a set
                elements += self.element_block()
            else:
                elements.append(self.element())
            while self.tok.kind == "nl":
                self.next()
            if not self.accept(","):
                break
        while self.tok.kind == "nl":
            self.next()
        self.expect("}", "comma or '}'")  # after an element bison takes only these
        return elements

    def element(self) -> ElementSyntax:
        start = self.tok
        if start.text == "*" and start.kind in ("op", "astr"):  # the catch-all element
            self.next()
            keys = [Sym("catchall", (start,), start.loc)]
        else:
            keys = [self.or_value(self.rhs_value())]
        while self.accept("."):
            keys.append(self.or_value(self.rhs_value()))
        elem = ElementSyntax(keys, loc=start.loc.to(self.tokens[self.pos - 1].loc))
        while self.at("timeout", "expires", "comment"):
            kw = self.next().text
            if kw == "timeout":
                elem.timeout = self.time_spec()
            elif kw == "expires":
                self.time_spec()
            else:
                self.string()
        if self.accept(":"):
            elem.data = self.verdict_or_value()
            if self.at(".") and not isinstance(elem.data, Verdict):  # `addr . port`: concatenated data
                elem.data = [elem.data]
                while self.accept("."):
                    elem.data.append(self.rhs_value())
        return elem

    def verdict_or_value(self):
        self._expand_variable()
        if self.at("accept", "drop", "continue", "return"):
            tok = self.next()
            return Verdict(tok.text, loc=tok.loc)
        if self.at("jump", "goto"):
            tok = self.next()
            target = self.identifier("string or '$'")
            return Verdict(tok.text, target.text, loc=target.loc)
        return self.rhs_value()

    def _scan_classid(self) -> None:
        """nft's scanner reads `{hexdigit}{1,4}:{hexdigit}{1,4}` followed by a
        blank, `:`, `-`, `}` or `,` as one word (src/scanner.l `classid`), in
        any context: `0:3` and `bcad:dada-bcad:dadc` are values where `0 : 3`
        is a syntax error. Join the tokens (and split a `-` the mock's scanner
        took into a word) when nothing separates them."""
        major, colon, minor = self.tok, self.peek(), self.peek(2)
        if not (major.kind in ("num", "str") and colon.text == ":" and minor.kind in ("num", "str")
                and colon.loc.line == major.loc.line == minor.loc.line and colon.loc.first == major.loc.last + 1
                and minor.loc.first == colon.loc.last + 1 and _HEX4_WORD.fullmatch(major.text)):
            return
        low, dash, rest = minor.text.partition("-")
        if not _HEX4_WORD.fullmatch(low):
            return
        after = self.peek(3)
        if not dash and after.loc.line == minor.loc.line and after.loc.first == minor.loc.last + 1 \
                and after.kind not in ("nl", "eof") and after.text not in (":", "-", "}", ","):
            return
        first = minor.loc.first
        joined = [Token("str", f"{major.text}:{low}", major.loc.to(replace(minor.loc, last=first + len(low) - 1)))]
        if dash:
            dash_col = first + len(low)
            joined.append(Token("op", "-", replace(minor.loc, first=dash_col, last=dash_col)))
            if rest:
                joined.append(Token("str", rest, replace(minor.loc, first=dash_col + 1)))
        self.tokens[self.pos:self.pos + 3] = joined

    def rhs_value(self) -> Sym:
        """value | low-high | addr/len"""
        self._expand_variable()
        self._scan_classid()
        tok = self.tok
        if tok.kind not in ("num", "str", "qstr", "astr"):
            raise self.unexpected()
        self.next()
        if self.accept("-"):
            self._scan_classid()
            if self.tok.kind not in ("num", "str", "qstr"):
                raise self.unexpected()
            high = self.next()
            return Sym("range", (tok, high), tok.loc.to(high.loc))
        if self.at("/") and self.peek().kind == "num":
            self.next()
            plen = self.next()
            return Sym("prefix", (tok, plen), tok.loc.to(plen.loc))
        return Sym("value", (tok,), tok.loc)

    def or_value(self, first: Sym) -> Sym:
        """`a | b | ...` in a set element: the values OR-ed (a Sym of kind "or")."""
        if first.kind != "value" or not self.at("|"):
            return first
        parts = [first.parts[0]]
        while self.accept("|"):
            parts.append(self.operand())
        return Sym("or", tuple(parts), first.loc.to(parts[-1].loc))

    # -- rules

    def rule(self, family: str, in_block: bool = False) -> RuleSpec:
        start = self.tok
        stmts: list[Stmt] = []
        self.rule_stmts = stmts  # what the rule matched so far: its network protocol, for `rt nexthop`
        comment = None
        pending = None  # a statement's evaluation error: bison parses the whole rule before nft evaluates it
        while not self.at_end_of_stmt():
            self._expand_variable()
            if self.at_end_of_stmt():
                break
            tok = self.tok
            end_of_rule = "newline or semicolon" if in_block else END_OF_RULE  # a chain block's rule: no EOF
            if comment is not None:
                raise self.unexpected(end_of_rule)
            if stmts and self._ends_rule(tok, stmts[-1].span):
                raise self.unexpected(end_of_rule, STATEMENT_SCOPES.get(self._first_word(stmts[-1].span), ""))
            if tok.is_word("comment"):
                self.next()
                text = self.string()
                comment = Comment(text.text, text.loc)
                continue
            try:
                stmt = self.statement(family)
            except NftError as err:
                if not self._parse_on_after(err):
                    raise
                pending = pending or err
                continue
            stmt.span = tok.loc.to(self.tokens[self.pos - 1].loc)
            stmt.loc = stmt.loc or stmt.span
            if stmts and stmts[-1].terminal and pending is None:
                raise NftError("Statement after terminal statement has no effect", stmt.loc, (stmts[-1].loc,))
            stmts.append(stmt)
        if pending is not None:
            raise pending
        if not stmts:
            raise self.unexpected()
        loc = start.loc.to(self.tokens[self.pos - 1].loc)
        return RuleSpec(evaluate_rule(stmts, family), comment, loc)

    def _parse_on_after(self, err: NftError) -> bool:
        """Whether the rule is read on after `err` to find a syntax error further
        on, which nft reports first (bison reads the whole rule before nft
        evaluates it): an error that knows where its statement ends
        (`resume_at`: a bare symbol and its value, a relation's one-token value)."""
        resume_at = getattr(err, "resume_at", None)
        if resume_at is None:
            return False
        self.pos = resume_at
        return True

    def _first_word(self, span: Location) -> str:
        line = span.source.lines[span.line - 1]
        return line[span.first - 1:span.last].split(" ", 1)[0]

    def _ends_rule(self, tok: Token, previous: Location) -> bool:
        """A keyword no statement starts with, after a statement: bison can only
        end the rule there. The word is read in the scope the statement before
        it left open (its lookahead: `redirect random to` reads STMT_NAT's `to`)."""
        if tok.kind == "op":
            return tok.text in RULE_ENDING_OPS
        if tok.kind != "str" or tok.text in STATEMENT_WORDS:
            return False
        scope = STATEMENT_SCOPES.get(self._first_word(previous), "")
        return tok.text in SCANNER_KEYWORDS[""] or tok.text in SCANNER_KEYWORDS.get(scope, ())

    def statement(self, family: str) -> Stmt:
        tok = self.tok
        word = tok.text if tok.kind in ("str", "op") else None
        if word in ("accept", "drop", "continue", "return"):
            self.next()
            return Verdict(word, loc=tok.loc)
        if word in ("jump", "goto"):
            self.next()
            target = self.identifier("'{'")
            return Verdict(word, target.text, loc=target.loc)
        handler = {"counter": self.stmt_counter, "log": self.stmt_log, "limit": self.stmt_limit,
                   "quota": self.stmt_quota, "synproxy": self.stmt_synproxy, "tproxy": self.stmt_tproxy,
                   "dup": self.stmt_dup, "fwd": self.stmt_fwd,
                   "reject": self.stmt_reject, "notrack": self.stmt_notrack, "queue": self.stmt_queue,
                   "snat": self.stmt_nat,
                   "dnat": self.stmt_nat, "masquerade": self.stmt_masq, "redirect": self.stmt_masq}.get(word)
        if word == "ct" and self.peek().text in ("helper", "timeout", "expectation") and self.peek(2).text == "set":
            self.next()
            return self.objref("ct " + self.next().text, tok, family)
        if handler:
            stmt = handler(family)
            if family == "bridge":
                _check_bridge_stmt(stmt)
            return stmt
        if word == "reset":
            return self.stmt_optstrip(family)
        if word in ("add", "update", "delete") and self.peek().text == "@":
            return self.stmt_dynset(family)
        if word == "flow" and self.peek().is_word("add", "offload"):
            return self.stmt_flow_offload()
        if word in ("meter", "flow") and tok.kind == "str":
            return self.stmt_meter(family)
        if word == "ct" and self.peek().is_word("count"):
            return self.stmt_connlimit()
        if word in HEADER_FIELDS and tok.kind == "str" and word not in PAYLOAD_FIELDS:
            self.header_field(self.next())  # valid or not, it raises: the mock has no field of it
        if word in NOT_MODELLED and tok.kind == "str":
            raise NftError(f"{word} is not modelled by the mock kernel", tok.loc)
        if word == "@" and tok.kind == "op":  # a raw payload expression
            return self.stmt_expression(family)
        if tok.kind == "num" and (self.peek().kind in ("nl", "eof") or self.peek().text in (";", "}")):
            self.next()  # a value takes another after it, as a bare symbol does
            raise self.unexpected()
        if tok.kind != "str" or (word in SCANNER_KEYWORDS[""] and word not in SELECTOR_WORDS):
            raise self.unexpected()
        if word not in SELECTOR_WORDS:  # a bare symbol: nft takes it for a value
            if self.peek().kind in ("nl", "eof") or self.peek().text in (";", "}"):
                self.next()
                raise self.unexpected()
            err = NftError("No symbol type information", tok.loc)
            following, after = self.peek(), self.peek(2)
            plain_value = following.kind in ("str", "num") and following.text not in STATEMENT_WORDS
            keyword_value = following.kind == "str" and following.text in KEYWORD_VALUES and not (
                following.text in HEADER_FIELDS and after.text in HEADER_FIELDS[following.text][1])
            err.resume_at = self.pos + 1 + (plain_value or keyword_value)  # `symbol value`, a relational one
            raise err
        return self.stmt_expression(family)

    def stmt_counter(self, family: str) -> Stmt:
        """`counter [packets N] [bytes N]...` (parser_bison.y counter_args: either, in any order)."""
        start = self.next()
        if self.at("name"):
            return self.objref("counter", start, family)
        counter = Counter()
        while self.at("packets", "bytes"):
            arg = self.next().text
            setattr(counter, arg, self.number().value)
        return counter

    def stmt_quota(self, family: str) -> Stmt:
        """parser_bison.y quota_stmt: `quota [over|until] N UNIT [used N UNIT]`."""
        start = self.next()
        if self.at("name"):
            return self.objref("quota", start, family)
        return Quota(*self.quota_args(start))

    def quota_args(self, start: Token) -> tuple[int, bool, int]:
        """quota_config: `[over|until] N UNIT [used N UNIT]`: bytes, over, used."""
        over = bool(self.accept("over"))
        if not over:
            self.accept("until")
        quota = self.number().value * self.data_unit(start)
        used = 0
        if self.accept("used"):
            used = self.number().value * self.data_unit(start)
        return quota, over, used

    def objref(self, kind: str, start: Token, family: str) -> Stmt:
        """`counter|quota|limit|synproxy name EXPR`, `ct helper|timeout|expectation set
        EXPR` (parser_bison.y objref_stmt): a name, or a map lookup giving one."""
        self.next()  # name, or set
        self._expand_variable()
        if self.at(*SELECTOR_WORDS) and self.tok.kind == "str":
            key, key_loc = self.located_selector_chain(family)
            map_expr = self.map_expr(key, key_loc, family, (obj_name,))
            return ObjRef(kind, map_expr=map_expr, loc=start.loc)
        name = self.string()
        return ObjRef(kind, name.text, loc=name.loc)

    def data_unit(self, start: Token) -> int:
        """quota_unit: BYTES or a STRING data_unit_parse() reads."""
        unit = self.word()
        factor = data_unit_parse(unit.text)
        if factor is None:
            raise NftError("Wrong rate format", start.loc.to(unit.loc))
        return factor

    def stmt_log(self, family: str) -> Stmt:
        """parser_bison.y log_args, then evaluate.c stmt_evaluate_log()'s checks."""
        start = self.next()
        log = Log()
        while True:
            if self.accept("prefix"):
                log.prefix = self.string().text
            elif self.accept("level"):
                level = self.string()
                if level.text not in Log.LEVELS:
                    raise NftError("invalid log level", level.loc)
                log.level = level.text
            elif self.at("group", "snaplen", "queue-threshold"):
                attr = {"group": "group", "snaplen": "snaplen", "queue-threshold": "qthreshold"}[self.next().text]
                setattr(log, attr, self.number().value)
            elif self.accept("flags"):
                log.logflags |= self.log_flags()
            else:
                break
        span = start.loc  # log_stmt_alloc()'s location: the keyword
        if log.group is not None or log.snaplen is not None or log.qthreshold is not None:
            if log.level is not None:
                raise NftError("level and group are mutually exclusive", span)
            if log.logflags:
                raise NftError("flags and group are mutually exclusive", span)
        if log.level == "audit" and (log.prefix is not None or log.logflags):
            raise NftError("log level audit doesn't support any further options", span)
        return log

    def log_flags(self) -> int:
        """parser_bison.y log_flags: `tcp sequence,options`, `ip options`, `skuid`, `ether`, `all`."""
        kind = self.keyword(("tcp", "ip", "skuid", "ether", "all"), "")
        if kind.text == "tcp":
            flags = 0
            while True:
                flag = self.keyword(("sequence", "options"), "TCP")
                flags |= NF_LOG_TCPSEQ if flag.text == "sequence" else NF_LOG_TCPOPT
                if not self.accept(","):
                    return flags
        if kind.text == "ip":
            self.keyword(("options",), "IP")
            return NF_LOG_IPOPT
        return {"skuid": NF_LOG_UID, "ether": NF_LOG_MACDECODE, "all": NF_LOG_MASK}[kind.text]

    def stmt_limit(self, family: str) -> Stmt:
        start = self.next()
        if self.at("name"):
            return self.objref("limit", start, family)
        return self.limit_args()

    def limit_args(self) -> Limit:
        """parser_bison.y limit_stmt and limit_config: `rate [over|until] ...`."""
        self.expect("rate")
        over = bool(self.accept("over"))
        if not over:
            self.accept("until")
        rate_num = self.number()
        rate = rate_num.value
        byte_unit = None
        if self.tok.kind == "str" and "/" not in self.tok.text and self.peek().text == "/":  # `1 kbytes / second`
            byte_tok = self.next()
            factor = data_unit_parse(byte_tok.text)
            if factor is None:
                raise NftError("Wrong rate format", rate_num.loc.to(byte_tok.loc))
            byte_unit = {f: name for name, f in BYTE_UNITS.items()}[factor]
            self.expect("/")
            unit = self.keyword(tuple(LIMIT_UNITS), "LIMIT")
        elif self.tok.kind == "str" and "/" in self.tok.text:  # `1 mbytes/second` scans as one string
            rate_tok = self.next()
            byte_unit, unit_text = rate_tok.text.split("/", 1)
            if byte_unit not in BYTE_UNITS or unit_text not in LIMIT_UNITS:
                raise NftError("Wrong rate format", rate_num.loc.to(rate_tok.loc))
            unit = Token("str", unit_text, rate_tok.loc)
        elif self.tok.is_word("bytes") or self.is_name(self.tok, "LIMIT"):  # limit_bytes: `1 kbytes / second`
            unit_tok = self.next()
            if unit_tok.text not in BYTE_UNITS:  # datatype.c data_unit_parse()
                raise NftError("Wrong rate format", rate_num.loc.to(unit_tok.loc))
            byte_unit = unit_tok.text
            self.expect("/")
            unit = self.keyword(tuple(LIMIT_UNITS), "LIMIT")
        else:
            self.expect("/")
            unit = self.keyword(tuple(LIMIT_UNITS), "LIMIT")  # parser_bison.y time_unit
        burst = burst_unit = None
        if self.accept("burst"):
            burst = self.number().value
            if byte_unit:  # limit_bytes: NUM BYTES or NUM STRING
                if not (self.tok.is_word("bytes") or self.is_name(self.tok, "LIMIT")):
                    raise self.unexpected("string or bytes", "LIMIT")
                burst_unit = self.next().text
                if burst_unit not in BYTE_UNITS:
                    raise NftError("Wrong rate format", self.tokens[self.pos - 1].loc)
            elif not self.tok.is_word("packets"):
                raise self.unexpected("packets", "LIMIT")
            else:
                self.next()
        return Limit(rate, unit.text, burst, over, byte_unit, burst_unit)

    def stmt_tproxy(self, family: str) -> Stmt:
        """parser_bison.y tproxy_stmt: `tproxy [ip|ip6] to ADDR[:PORT]|:PORT` (an IPv6
        address in brackets); the address is read once the family is known (evaluate_rule())."""
        start = self.next()
        nat_family = self.next().text if self.at("ip", "ip6") else None
        self.expect("to", "to" if nat_family else "to or ip or ip6")
        addr = port = None
        if not self.at(":"):
            addr = self.nat_address()
        if self.accept(":"):
            port = _parse(self.operand(), types.inet_service)
        return Tproxy(nat_family, addr, port, loc=start.loc)

    def stmt_dup(self, family: str) -> Stmt:
        """parser_bison.y dup_stmt: `dup to EXPR [device EXPR]` (nft_dup_ipv4, nft_dup_ipv6;
        evaluate.c stmt_evaluate_dup() refuses other families but netdev's)."""
        start = self.next()
        if family == "netdev":
            self.expect("to", "to")
            dev = self.device_operand(family)
            if self.accept("device"):
                self.operand()
                raise NftError("cannot specify device", start.loc.to(self.tokens[self.pos - 1].loc))
            return DupNetdev(dev, self.iface_type, loc=start.loc)
        if family not in ("ip", "ip6"):
            self.expect("to", "to")
            self.operand()
            if self.accept("device"):
                self.string()
            raise NftError("unsupported family", start.loc.to(self.tokens[self.pos - 1].loc))
        addr_type = types.ipv6_addr if family == "ip6" else types.ipv4_addr
        self.expect("to", "to")
        if self.at(*SELECTOR_WORDS) and self.tok.kind == "str":
            key, key_loc = self.located_selector_chain(family)
            addr = self.map_expr(key, key_loc, family, (addr_type,))
        else:
            addr = _parse(self.operand(), addr_type)
        device = None
        if self.accept("device"):
            device = self.string().text
        return Dup(addr, device, loc=start.loc, family=family)

    def device_operand(self, family: str):
        """A device as stmt_evaluate_arg() takes one for ifindex_type: a name, or a map giving names."""
        self._expand_variable()
        if self.at(*SELECTOR_WORDS) and self.tok.kind == "str":
            key, key_loc = self.located_selector_chain(family)
            return self.map_expr(key, key_loc, family, (self.iface_type,))
        return _parse(self.operand(), self.iface_type)

    def stmt_fwd(self, family: str) -> Stmt:
        """parser_bison.y fwd_stmt: `fwd to EXPR`, `fwd ip|ip6 to EXPR device EXPR`
        (nft_fwd_netdev); evaluate.c stmt_evaluate_fwd() refuses it outside netdev tables."""
        start = self.next()
        nfproto = self.next().text if self.at("ip", "ip6") else None
        self.expect("to", "to" if nfproto else "to or ip or ip6")
        if family != "netdev":
            self.operand()
            if nfproto is not None:
                self.expect("device", "device")
                self.operand()
            raise NftError("unsupported family", start.loc.to(self.tokens[self.pos - 1].loc))
        addr = None
        if nfproto is not None:
            addr_type = types.ipv6_addr if nfproto == "ip6" else types.ipv4_addr
            self._expand_variable()
            if self.at(*SELECTOR_WORDS) and self.tok.kind == "str":
                addr = self.map_expr(*self.located_selector_chain(family), family, (addr_type,))
            else:
                addr = _parse(self.operand(), addr_type)
            self.expect("device", "device")
        dev = self.device_operand(family)
        return Fwd(dev, self.iface_type, nfproto, addr, loc=start.loc.to(self.tokens[self.pos - 1].loc))

    def stmt_synproxy(self, family: str) -> Stmt:
        """parser_bison.y synproxy_stmt: `synproxy name EXPR`, or `synproxy`
        and any of `mss N`, `wscale N`, `timestamp`, `sack-perm`, in any order, again or not."""
        start = self.next()
        if self.at("name"):
            return self.objref("synproxy", start, family)
        if family not in SYNPROXY_FAMILIES:
            raise NftError(f"synproxy in {family} tables is not modelled by the mock kernel", start.loc)
        mss = wscale = flags = 0
        while self.at("mss", "maxseg", "wscale", "timestamp", "sack-perm", "sack-permitted"):
            word = self.next().text
            if word in ("mss", "maxseg"):  # scanner.l: both are MSS, both sack words SACK_PERM
                mss, flags = self.number().value, flags | NF_SYNPROXY_OPT_MSS
            elif word == "wscale":
                wscale, flags = self.number().value, flags | NF_SYNPROXY_OPT_WSCALE
            else:
                flags |= NF_SYNPROXY_OPT_TIMESTAMP if word == "timestamp" else NF_SYNPROXY_OPT_SACK_PERM
        return Synproxy(mss, wscale, flags, loc=start.loc)

    # -- stateful objects (parser_bison.y add_cmd's COUNTER ... CT EXPECTATION, obj_block)

    def object_kind(self) -> str | None:
        """The object keyword at the current token (`ct helper` is two words), read; None if none."""
        if self.at("counter", "quota", "limit", "synproxy"):
            return self.next().text
        if self.at("ct") and self.peek().text in ("helper", "timeout", "expectation"):
            self.next()
            return "ct " + self.next().text
        return None

    def cmd_object(self, op: str, kind: str, start: Token) -> None:
        """`add|create|delete|list|reset KIND [family] table name [config]`."""
        cmd = Command(op, "obj", start.loc)
        self.table_spec(cmd)
        if op == "delete" and self.handle_spec(cmd):
            cmd.obj_kind = kind
            self.finish(cmd, start)
            return
        name = self.identifier(_name_expected(op, kind))
        cmd.name, cmd.locs["name"], cmd.obj_kind = name.text, name.loc, kind
        if op in ("add", "create"):
            cmd.object = self.object_config(kind, name.text, start, braces=False)
        self.finish(cmd, start)

    def cmd_objects(self, op: str, words: str, start: Token) -> None:
        """`list counters|quotas|limits|synproxys [table F T]`, `reset counters|quotas [table F T]`."""
        cmd = Command(op, "objs", start.loc)
        cmd.obj_kind = LIST_KINDS[words]
        if self.accept("table"):
            self.table_spec(cmd)
        else:
            self.family_spec(cmd)
        self.finish(cmd, start)

    def object_declaration(self, table: Command, kind: str, start: Token) -> Command:
        """`KIND NAME { config }` in a table block."""
        name = self.identifier()
        cmd = Command("add", "obj", start.loc, table.family, table.table, name=name.text)
        cmd.locs.update(table=table.locs.get("table"), name=name.loc)
        cmd.obj_kind = kind
        cmd.object = self.object_config(kind, name.text, start, braces=True)
        cmd.loc = start.loc.to(self.tokens[self.pos - 1].loc)
        cmd.locs["refusal"] = name.loc  # the kernel's refusal of a block's object is placed at its name
        return cmd

    def object_config(self, kind: str, name: str, start: Token, braces: bool) -> NftObject:
        """The object's configuration, in braces (a block needs them) or not."""
        braced = bool(self.accept("{")) if not braces else bool(self.expect("{"))
        self.skip_separators()
        if kind == "counter":
            obj = CounterObject(kind, name)
            while self.at("packets", "bytes"):
                arg = self.next().text
                setattr(obj, arg, self.number().value)
                self.skip_separators()
        elif kind == "quota":
            obj = QuotaObject(kind, name, state=QuotaState(*self.quota_args(start)))
        elif kind == "limit":
            obj = LimitObject(kind, name, limit=self.limit_args())
        elif kind == "synproxy":
            obj = self.synproxy_config(name, braced)
        else:
            name_tok = self.tokens[self.pos - 2] if braced else self.tokens[self.pos - 1]
            empty = Location(name_tok.loc.source, name_tok.loc.line, name_tok.loc.last, name_tok.loc.last)
            obj = self.ct_object_config(kind, name, empty)  # the config's empty rule: where the name ends
        self.skip_separators()
        if braced:
            self.expect("}")
        return obj

    def skip_separators(self) -> None:
        while self.tok.kind == "nl" or self.at(";"):
            self.next()

    def synproxy_config(self, name: str, braces: bool) -> SynproxyObject:
        """synproxy_config: `mss N [;] wscale N [;] [timestamp] [sack-perm]`, in that order."""
        obj = SynproxyObject("synproxy", name)
        if not self.at("mss"):
            raise self.unexpected("mss" if braces else "mss or '{'", "STMT_SYNPROXY")
        self.next()
        obj.mss = self.number().value
        separated = self.tok.kind == "nl" or self.at(";")
        self.skip_separators()
        self.expect("wscale", "wscale")
        obj.wscale = self.number().value
        obj.flags = NF_SYNPROXY_OPT_MSS | NF_SYNPROXY_OPT_WSCALE
        if separated and not (self.tok.kind == "nl" or self.at(";")):  # the separated form ends in one too
            raise self.unexpected("newline or semicolon")
        self.skip_separators()
        if self.accept("timestamp"):
            obj.flags |= NF_SYNPROXY_OPT_TIMESTAMP
        if self.accept("sack-perm"):
            obj.flags |= NF_SYNPROXY_OPT_SACK_PERM
        return obj

    def ct_object_config(self, kind: str, name: str, at: Location) -> NftObject:
        """ct_helper_config, ct_timeout_config, ct_expect_config: `;`-separated
        settings, then evaluate.c's checks (ct_timeout_evaluate(), ct_expect_evaluate())."""
        if kind == "ct helper":
            obj = CtHelperObject(kind, name)
        elif kind == "ct timeout":
            obj = CtTimeoutObject(kind, name)
        else:
            obj = CtExpectObject(kind, name, l4proto=0)
        obj.l3proto = None  # the table's family, as the kernel takes it (nft_ct_helper_obj_init())
        policy_locs = []
        while not self.at("}") and self.tok.kind != "eof":
            self.skip_separators()
            if self.at("}"):
                break
            word = self.word()
            if word.text == "type" and kind == "ct helper":
                obj.helper = self.string().text
                self.expect("protocol")
                obj.l4proto = _parse(self.operand(), types.inet_proto)
            elif word.text == "protocol" and kind != "ct helper":
                obj.l4proto = _parse(self.operand(), types.inet_proto)
            elif word.text == "l3proto":
                obj.l3proto = self.keyword(("ip", "ip6", "inet"), "").text
            elif word.text == "policy" and kind == "ct timeout":
                self.expect("=")
                self.expect("{")
                while not self.at("}"):
                    state = self.word()
                    self.expect(":")
                    obj.policy[state.text] = self.number().value
                    policy_locs.append(state)
                    self.skip_separators()
                    if not self.accept(","):
                        break
                self.expect("}")
            elif kind == "ct expectation" and word.text in ("dport", "size"):
                setattr(obj, word.text, self.number().value)
            elif kind == "ct expectation" and word.text == "timeout":
                obj.timeout_ms = int(self.time_spec() * 1000)
            else:
                raise NftError(f"syntax error, unexpected {word.text}", word.loc)
        if kind == "ct timeout":
            states = dict(TIMEOUT_STATES.get(obj.l4proto, ()))
            for state in policy_locs:
                if state.text not in states:
                    raise NftError("invalid state for this protocol", state.loc)
        if kind == "ct expectation" and not (obj.l4proto and obj.dport and obj.timeout_ms and obj.size):
            raise NftError("missing options", at)
        return obj

    def stmt_reject(self, family: str) -> Stmt:
        start = self.next()
        if not self.accept("with"):
            return Reject(loc=start.loc)
        self._expand_variable()
        kind = self.keyword(("icmp", "icmpv6", "tcp", "icmpx"), "STMT_REJECT")  # parser_bison.y reject_opts
        if kind.text == "tcp":
            self.expect("reset", "reset")
            return Reject("tcp reset", loc=start.loc.to(self.tokens[self.pos - 1].loc), keyword_loc=start.loc)
        self.accept("type")
        if self.at_end_of_stmt():
            raise self.unexpected("number or string or type")
        code = self.next()
        return Reject(kind.text, _parse(code, Reject.CODE_TYPES[kind.text]), loc=start.loc.to(code.loc),
                      code_loc=code.loc, keyword_loc=start.loc)

    def stmt_connlimit(self) -> Stmt:
        """parser_bison.y connlimit_stmt: `ct count [over] NUM`."""
        start = self.next()
        self.next()
        over = bool(self.accept("over"))
        count = self.number()
        return nft_ct.ConnLimit(count.value, over, loc=start.loc.to(count.loc))

    def stmt_queue(self, family: str) -> Stmt:
        """parser_bison.y queue_stmt: `queue [num N[-M]] [bypass][,fanout]`,
        `queue [flags F[,F]] to EXPR`, `queue flags F num N`; checked as
        evaluate.c stmt_evaluate_queue() checks it (16-bit queue numbers, fanout
        over a range)."""
        start = self.next()
        flags: set[str] = set()
        num = expr = None
        num_loc = start.loc
        if self.accept("flags"):
            flags = self.queue_flags()
            if self.at("num"):
                num, num_loc = self.queue_range(self.next())
            else:
                self.expect("to", "to or num")
                num, expr, num_loc = self.queue_target(family)
        elif self.accept("to"):
            num, expr, num_loc = self.queue_target(family)
        else:
            while self.at("num", "bypass", "fanout"):
                if self.at("num"):
                    num, num_loc = self.queue_range(self.next())
                else:
                    flags |= self.queue_flags()
        if "fanout" in flags and (expr is not None or num is None or num[0] == num[1]):
            raise NftError("fanout requires a range to be specified", num_loc)
        if isinstance(expr, (Jhash, Symhash, Numgen)) and expr.mod + expr.offset - 1 > 0xFFFF:  # its ectx.maxval
            raise NftError("queue expression max value exceeds 65535", num_loc)
        return Queue(num, tuple(sorted(flags)), expr, loc=start.loc)

    def queue_flags(self) -> set[str]:
        flags = {self.keyword(("bypass", "fanout"), "EXPR_QUEUE").text}
        while self.at(",") and self.peek().is_word("bypass", "fanout"):
            self.next()
            flags.add(self.next().text)
        return flags

    def queue_range(self, num: Token | None = None) -> tuple[tuple[int, int], Location]:
        """queue_stmt_expr_simple: a number or `low-high`; after `num` the
        expression's location starts at the keyword (queue_stmt_arg's @$)."""
        self._expand_variable()
        if self.tok.kind != "num":
            raise self.unexpected("number or '$'", "EXPR_QUEUE")
        low = self.next()
        high = low
        if self.accept("-"):
            high = self.number()
        loc = (num or low).loc.to(high.loc)
        try:
            return (_parse(low, QUEUE_NUM), _parse(high, QUEUE_NUM)), loc
        except NftError as err:
            raise NftError(err.message, loc if num else err.loc) from None

    def queue_target(self, family: str):
        """queue_stmt_expr: a number or range, or an expression mapped to one."""
        self._expand_variable()
        if self.tok.kind == "num":
            num, loc = self.queue_range()
            return num, None, loc
        key, key_loc = self.located_selector_chain(family)
        if isinstance(key, (Jhash, Symhash, Numgen)) and not self.at("map"):  # numgen_expr, hash_expr
            key.loc = key_loc
            return None, key, key_loc
        if not self.at("map"):
            raise self.unexpected(". or map")
        expr = self.map_expr(key, key_loc, family, (QUEUE_NUM,))
        return None, expr, expr.loc

    def stmt_flow_offload(self) -> Stmt:
        """parser_bison.y flow_stmt: `flow add|offload @FLOWTABLE` (nft_flow_offload)."""
        start = self.next()
        self.next()
        if not self.at("@"):
            raise self.unexpected("@")
        self.next()
        name = self.identifier()
        return FlowOffload(name.text, loc=start.loc.to(name.loc))

    def stmt_notrack(self, family: str) -> Stmt:
        self.next()
        return Notrack()

    def stmt_nat(self, family: str) -> Stmt:
        """`snat|dnat [ip|ip6] to ADDR[-ADDR][:PORT[-PORT]]`, an IPv6 address in
        brackets when a port follows (`[2001:db8::1]:80`). In an inet table
        the addresses' family is the statement's, else the rule's network
        protocol: they are read once the rule is evaluated (evaluate_rule())."""
        kind = self.next()
        if self.at("ip", "ip6") and self.peek().kind == "str" and self.peek().text in HEADER_FIELDS[self.tok.text][1]:
            # nat_stmt_args' first form: the address is an expression (`snat ip daddr`), no `to`
            expr, expr_loc = self.located_selector_chain(family)
            err = NftError("ip or ip6 must be specified with address for inet tables.", kind.loc) \
                if family == "inet" else \
                NftError("a NAT address from an expression is not modelled by the mock kernel", expr_loc)
            err.resume_at = self.pos  # bison reads on: a syntax error later in the rule is nft's first
            raise err
        nat_family = self.next().text if self.at("ip", "ip6") else None
        prefix = bool(self.accept("prefix"))
        self.expect("to")
        addr = ports = prefix_len = None
        port_loc = None
        if self.at(*SELECTOR_WORDS):
            nat_types = NAT_DATA_TYPES6 if (nat_family or family) == "ip6" else NAT_DATA_TYPES
            addr_map = self.map_expr(*self.located_selector_chain(family), family, nat_types,
                                     lambda syntax: _nat_data_type(syntax, nat_types))
            if family == "inet" and nat_family is None:
                raise NftError("ip or ip6 must be specified with address for inet tables.", kind.loc)
            return Nat(kind.text, nat_family, flags=self.nat_flags(), loc=kind.loc, addr_map=addr_map, prefix=prefix)
        if not self.at(":"):
            low = self.nat_address()
            if self.accept("/"):
                prefix_len = self.number().value
            high = self.nat_address() if prefix_len is None and self.accept("-") else low
            addr = (low, high)
        port_error = None
        if self.accept(":"):
            ports, port_loc, port_error = self.port_range()
        nat = Nat(kind.text, nat_family, addr, ports, self.nat_flags(), loc=kind.loc, port_loc=port_loc,
                  prefix=prefix, prefix_len=prefix_len)
        nat.port_error = port_error
        return nat

    def nat_address(self) -> Token:
        """An address token, bracketed or not (its type is known at evaluation)."""
        if self.accept("["):
            addr = self.operand()
            self.expect("]")
            return addr
        return self.operand()

    def stmt_masq(self, family: str) -> Stmt:
        kind = self.next()
        ports = port_loc = None
        if self.accept("to"):
            self.expect(":", "colon" if kind.text == "masquerade" else None)  # nft 1.0.6 names it for masquerade
            if self.at(*SELECTOR_WORDS):
                port_map = self.map_expr(*self.located_selector_chain(family), family, (types.inet_service,))
                return Nat(kind.text, flags=self.nat_flags(), loc=kind.loc, port_loc=port_map.loc,
                           port_map=port_map)
            ports, port_loc, port_error = self.port_range()
            nat = Nat(kind.text, None, None, ports, self.nat_flags(), loc=kind.loc, port_loc=port_loc)
            nat.port_error = port_error
            return nat
        return Nat(kind.text, None, None, ports, self.nat_flags(), loc=kind.loc, port_loc=port_loc)

    def port_range(self) -> tuple[tuple[int, int], Location, NftError | None]:
        """`PORT[-PORT]`; a port that is no service is an error evaluation
        raises after its transport protocol check (nat_evaluate_transport())."""
        low = self.operand()
        high = self.operand() if self.accept("-") else low
        try:
            ports = (_parse(low, types.inet_service), _parse(high, types.inet_service))
        except NftError as err:
            return (0, 0), low.loc.to(high.loc), err
        return ports, low.loc.to(high.loc), None

    def nat_flags(self) -> tuple:
        flags = []
        while self.at("random", "fully-random", "persistent"):
            flags.append(self.next().text)
            if not self.accept(","):
                break
        return tuple(flags)

    # -- expressions

    def selector(self, family: str):
        """One primary expression: a header field, meta or ct key, or fib."""
        self._expand_variable()
        tok = self.next()
        word = tok.text
        if word == "tcp" and self.at("option"):
            return self.tcp_option(tok)
        if word == "sctp" and self.at("chunk"):
            return self.sctp_chunk(tok)
        if word == "@" and tok.kind == "op":
            return self.raw_payload(tok)
        if word == "rt":
            return self.rt_expr(tok, family)
        if word == "ipsec" and tok.kind == "str":
            if not self.at("in", "out"):  # meta_key_unqualified: a bare `ipsec` is `meta ipsec` (secpath)
                return MetaKey("ipsec"), tok.loc
            return self.xfrm_expr(tok)
        if word == "osf" and tok.kind == "str":
            return self.osf_expr(tok)
        if word == "socket" and tok.kind == "str":
            if self.at("cgroupv2"):
                raise NftError("socket cgroupv2 is not modelled by the mock kernel", tok.loc.to(self.tok.loc))
            key = self.keyword(("transparent", "mark", "wildcard"), "EXPR_SOCKET")
            return Socket(key.text), tok.loc.to(key.loc)
        if word in ("numgen", "jhash", "symhash") and tok.kind == "str":
            return self.generator_expr(tok, family)
        if word in PAYLOAD_FIELDS:
            fld = self.header_field(tok)
            name = FIELD_ALIASES.get((word, fld.text), fld.text)
            return Payload((PAYLOAD_FIELDS[word][name],)), tok.loc.to(fld.loc)
        if word == "exthdr":
            header = self.keyword(EXTHDR_EXISTS, "")
            return Exthdr6(header.text, None), tok.loc.to(header.loc)
        if word in EXTHDR6_WORDS:
            return self.exthdr6_field(tok)
        if word == "meta" or (word in META_UNQUALIFIED):
            key = self.meta_key(tok) if word == "meta" else tok
            if key.text in MetaBridge.TYPES:
                return MetaBridge(key.text), tok.loc.to(key.loc)
            if key.text in MetaKey.TYPES:
                return MetaKey(key.text, self.iface_type if key.text == "sdif" else None), tok.loc.to(key.loc)
            if key.text not in Meta.TYPES:
                raise NftError(f"meta {key.text} is not modelled by the mock kernel", tok.loc.to(key.loc))
            if key.text == "nfproto" and family != "inet":
                raise NftError("meta nfproto is only useful in the inet family", tok.loc.to(key.loc))
            dtype = self.iface_type if key.text in ("iif", "oif") else None
            return Meta(key.text, dtype), tok.loc.to(key.loc)
        if word == "ct":
            key = self.keyword(CT_KEYS, "CT")
            direction = None
            if key.text in ("original", "reply"):
                direction, key = key.text, self.keyword(CT_DIR_KEYS, "CT")
                if key.text in ("ip", "ip6"):
                    net, key = key.text, self.keyword(("saddr", "daddr"), key.text.upper())
                    return self.ct_addr(tok, key, direction, net, family)
                if key.text in ("saddr", "daddr"):
                    return self.ct_addr(tok, key, direction, None, family)
            if key.text in nft_ct.KEY_TYPES:
                return nft_ct.CtKey(key.text, direction), tok.loc.to(key.loc)
            if key.text not in Ct.TYPES:
                raise NftError(f"{self.text_from(tok)} is not modelled by the mock kernel", tok.loc.to(key.loc))
            return Ct(key.text), tok.loc.to(key.loc)
        if word == "fib" and family == "bridge":
            raise NftError("fib in the bridge family is not modelled by the mock kernel", tok.loc)
        if word == "fib":
            return self.fib_expr(tok)
        self.pos -= 1
        raise self.unexpected()

    def ct_addr(self, tok: Token, key: Token, direction: str, net: str | None, family: str) -> tuple[CtAddr, Location]:
        """`ct original|reply [ip|ip6] saddr|daddr`: without a network protocol an ip
        or ip6 table gives its own (nft's NFT_CT_SRC/DST key, listed with it);
        the other family's is a conflict (src/evaluate.c expr_evaluate_ct())."""
        loc = tok.loc.to(key.loc)
        bare = net is None
        if bare:
            # ct_gen_nh_dependency(): an earlier IPv4 match gives it (nft 1.0.6 tests its
            # IPv6 case against proto_ip too, so only IPv4's)
            net = family if family in ("ip", "ip6") else "ip" if _network_of(self.rule_stmts) == "ip" else None
            if net is None:
                raise NftError(f'cannot determine ip protocol version, use "ip {key.text}" or "ip6 {key.text}" '
                               "instead", loc)
        if family in ("ip", "ip6") and net != family:
            raise NftError(f"conflicting protocols specified: {family} vs. {net}", loc)
        addr = CtAddr(direction, net, key.text)
        if bare:
            addr.bare_loc = loc
        return addr, loc

    def tcp_option(self, tcp: Token) -> tuple[TcpOption, Location]:
        """parser_bison.y tcp_hdr_expr: `tcp option NAME|KIND` (whether the option
        is there, compared with `exists` or `missing`), `tcp option NAME FIELD`,
        `tcp option @KIND,OFFSET,LENGTH`."""
        self.next()
        self._expand_variable()
        if self.accept("@"):
            kind = self.option_kind()
            self.expect(",")
            offset = self.number()
            self.expect(",")
            length = self.number()
            return TcpOption(None, None, kind=kind, raw=(offset.value, length.value)), tcp.loc.to(length.loc)
        if self.tok.kind == "num":
            kind_tok = self.tok
            kind = self.option_kind()
            name = KIND_NAMES.get(kind)
            if self.at("length") and name is not None and "length" in TCP_OPTIONS[name][1]:
                return TcpOption(name, self.next().text), tcp.loc.to(self.tokens[self.pos - 1].loc)
            return TcpOption(name, None, kind=kind), tcp.loc.to(kind_tok.loc)
        if not self.tok.is_word(*SCANNER_KEYWORDS["TCP"]) or self.tok.text in ("option", "options"):
            raise self.unexpected()
        name = self.next()
        if name.text in OPTION_KINDS:
            return TcpOption(None, None, kind=OPTION_KINDS[name.text]), tcp.loc.to(name.loc)
        option = OPTION_ALIASES.get(name.text, name.text)
        if option not in TCP_OPTIONS:
            raise self.unexpected()
        block = SACK_BLOCKS.get(name.text, 0)
        if self.tok.kind == "str" and self.tok.text in TCP_OPTIONS[option][1]:
            field_tok = self.next()
            return TcpOption(option, field_tok.text, block), tcp.loc.to(field_tok.loc)
        if self.tok.is_word(*SCANNER_KEYWORDS["TCP"]):  # a field of another option
            raise self.unexpected()
        return TcpOption(option, None, block), tcp.loc.to(name.loc)

    def option_kind(self) -> int:
        """tcp_hdr_option_type's NUM: at most 255."""
        kind = self.number()
        if kind.value > 255:
            raise NftError("value too large", kind.loc)
        return kind.value

    def stmt_dynset(self, family: str) -> Stmt:
        """parser_bison.y set_stmt: `add|update|delete @NAME { KEY [timeout T] }`."""
        op = self.next()
        at = self.next()
        name = self.identifier(scope="AT")
        self.expect("{")
        key = self.selector_chain(family)
        timeout = self.time_spec() if self.accept("timeout") else None
        if not self.at("}"):
            raise NftError(f"{self.tok.text} in a set statement's element is not modelled by the mock kernel",
                           self.tok.loc)
        self.next()
        return nft_dynset.Dynset(op.text, key, SetRef(None, name.text, loc=at.loc.to(name.loc)), timeout,
                                 loc=op.loc)

    def stmt_meter(self, family: str) -> Stmt:
        """parser_bison.y meter_stmt: `meter NAME [size N] { KEY [timeout T] STMT }`,
        or the legacy `flow table NAME { ... }`; checked as evaluate.c
        stmt_evaluate_meter() checks it (no comment on the key, a stateful
        statement: counter, limit, quota, ct count)."""
        start = self.next()
        if start.text == "flow":
            self.expect("table", "table")
        name = self.identifier()
        size = 0
        if start.text == "meter" and self.accept("size"):
            size = self.number().value
            if size > 0xFFFFFFFF:
                raise NftError("integer out of range", self.tokens[self.pos - 1].loc)
        self.expect("{")
        if self.tok.kind == "str" and self.tok.text not in SELECTOR_WORDS and self.tok.text not in SCANNER_KEYWORDS[""]:
            raise NftError("No symbol type information", self.tok.loc)  # a constant: no type to read it as
        key, key_loc = self.located_selector_chain(family)
        timeout = None
        while self.at("timeout", "expires", "comment"):
            option = self.next()
            if option.text == "timeout":
                timeout = self.time_spec()
            elif option.text == "comment":
                self.string()
                raise NftError("Meter key expression can not contain comments",
                               key_loc.to(self.tokens[self.pos - 1].loc))
            else:
                raise NftError("expires on a meter's key is not modelled by the mock kernel", option.loc)
        stmt_start = self.tok
        stmt = self.statement(family)
        stmt_loc = stmt_start.loc.to(self.tokens[self.pos - 1].loc)
        self.expect("}")
        whole = start.loc.to(self.tokens[self.pos - 1].loc)
        if not isinstance(stmt, (Counter, Limit, Quota, nft_ct.ConnLimit)):  # STMT_F_STATEFUL
            raise NftError("meter statement must be stateful", stmt_loc, (whole,))
        return nft_dynset.Meter(name.text, size, key, timeout, stmt, loc=whole, key_loc=key_loc)

    def stmt_optstrip(self, family: str) -> Stmt:
        """parser_bison.y optstrip_stmt: `reset tcp option NAME|KIND`."""
        start = self.next()
        if not self.at("tcp"):
            raise self.unexpected()
        tcp = self.next()
        if not self.at("option"):
            raise self.unexpected()
        option, loc = self.tcp_option(tcp)
        if option.field is not None or option.raw is not None:
            raise self.unexpected()
        return TcpOptionReset(option, loc=start.loc.to(loc))

    def raw_payload(self, at: Token) -> tuple[RawPayload, Location]:
        """`@BASE,OFFSET,LEN` (parser_bison.y payload_raw_expr, payload_base_spec)."""
        self._expand_variable()
        base = self.tok
        if base.kind != "str" or base.text not in RAW_BASES:
            if base.kind == "str" and self.is_name(base, "AT"):
                raise NftError("unknown raw payload base", base.loc)
            raise self.unexpected(scope="AT")
        self.next()
        self.expect(",", "comma")
        offset = self.number().value
        self.expect(",", "comma")
        bits = self.number()
        if offset + bits.value > 0xFFFFFFFF or bits.value > REGISTER_BITS:
            raise NftError(f"raw payload of {bits.value} bits at {offset} is not modelled by the mock kernel",
                           at.loc.to(bits.loc))
        return RawPayload(base.text, offset, bits.value), at.loc.to(bits.loc)

    def sctp_chunk(self, sctp_tok: Token) -> tuple[SctpChunk, Location]:
        """`sctp chunk NAME [FIELD]` (parser_bison.y sctp_chunk_alloc): a field
        the chunk's descriptor has, or none (NFT_EXTHDR_F_PRESENT)."""
        self.next()
        name = self.keyword(tuple(SCTP_CHUNKS), "EXPR_SCTP_CHUNK")
        if self.tok.is_word(*SCTP_CHUNKS[name.text][1]):
            fld = self.next()
            return SctpChunk(name.text, fld.text), sctp_tok.loc.to(fld.loc)
        return SctpChunk(name.text, None), sctp_tok.loc.to(name.loc)

    def fib_expr(self, fib: Token) -> tuple[Fib, Location]:
        """`fib FLAG[ . FLAG...] RESULT`, checked as nft's fib_expr_alloc() and
        expr_evaluate_fib() check it."""
        flags = [self.keyword(FIB_FLAGS, "EXPR_FIB")]
        while self.accept("."):
            flags.append(self.keyword(FIB_FLAGS, "EXPR_FIB"))
        result = self.keyword(FIB_RESULTS, "EXPR_FIB")
        loc = flags[0].loc.to(flags[-1].loc)
        names = {f.text for f in flags}
        if not names & {"saddr", "daddr"}:
            raise NftError("fib: need either saddr or daddr", loc)
        if names >= {"saddr", "daddr"}:
            raise NftError("fib: saddr and daddr are mutually exclusive", loc)
        if names >= {"iif", "oif"}:
            raise NftError("fib: iif and oif are mutually exclusive", loc)
        dtype = {"oif": self.iface_type, "oifname": types.ifname}.get(result.text, types.fib_addrtype)
        return Fib(tuple(f for f in FIB_FLAGS if f in names), result.text, dtype), fib.loc.to(result.loc)

    def exthdr6_field(self, head: Token) -> tuple[Exthdr6, Location]:
        """`hbh nexthdr`, `frag more-fragments`, `srh sid[2]`, `rt0 addr[1]`, ..."""
        scope, words = EXTHDR6_WORDS[head.text]
        fld = self.keyword(words, scope)
        slot = 0
        if fld.text == EXTHDR6_SLOTS.get(head.text) and head.text != "rt2":
            self.expect("[", "'['")
            slot = self.number().value
            self.expect("]")
        expr = Exthdr6(head.text, fld.text, slot)
        if slot == 0 and fld.text == EXTHDR6_SLOTS.get(head.text) and head.text != "rt2":
            expr.invalid = NftError("Could not parse integer", self.tok.loc)
        # nft 1.0.6's exthdr.c has no template for rt2's address, and two slots only
        elif fld.text == "addr" and head.text == "rt2" or slot > EXTHDR6_SLOT_TEMPLATES:
            expr.invalid = NftError("No symbol type information", self.tok.loc)
        return expr, head.loc.to(self.tokens[self.pos - 1].loc)

    def xfrm_expr(self, ipsec: Token) -> tuple[Xfrm, Location]:
        """parser_bison.y xfrm_expr: `ipsec in|out [spnum N] KEY` (spnum at most 255)."""
        direction = self.keyword(("in", "out"), "EXPR_IPSEC").text
        spnum = 0
        spnum_tok = self.accept("spnum")
        if spnum_tok:
            num = self.number()
            spnum = num.value
        family = self.next().text if self.at("ip", "ip6") else None
        if family is None and not self.at("spi", "reqid"):
            raise self.unexpected("ip or ip6 or spi or reqid", "EXPR_IPSEC")
        key = self.keyword(("saddr", "daddr") if family else ("spi", "reqid"), "EXPR_IPSEC")
        if spnum > 255:  # evaluated once the grammar has the whole expression
            raise NftError("value too large", spnum_tok.loc.to(num.loc))
        return Xfrm(direction, spnum, key.text, family), ipsec.loc.to(key.loc)

    def generator_expr(self, head: Token, family: str):
        """parser_bison.y numgen_expr and hash_expr: `numgen inc|random mod N [offset N]`,
        `jhash EXPR mod N [seed N] [offset N]`, `symhash mod N [offset N]`."""
        mode = source = seed = None
        if head.text == "numgen":
            mode = self.keyword(("inc", "random"), "EXPR_NUMGEN").text
        elif head.text == "jhash":
            if not self.at(*SELECTOR_WORDS):
                raise self.unexpected(scope="EXPR_HASH")
            source = self.selector_chain(family)
        self.expect("mod", "mod")
        mod = self.number()
        if mod.value == 0:
            raise NftError("Could not process rule: Numerical result out of range", mod.loc)
        if head.text == "jhash" and self.accept("seed"):
            seed = self.number().value
        offset = self.number().value if self.accept("offset") else 0
        loc = head.loc.to(self.tokens[self.pos - 1].loc)
        if head.text == "numgen":
            return Numgen(mode, mod.value, offset), loc
        if head.text == "jhash":
            return Jhash(source, mod.value, seed, offset), loc
        return Symhash(mod.value, offset), loc

    def osf_expr(self, osf: Token) -> tuple[Osf, Location]:
        """parser_bison.y osf_expr: `osf [ttl loose|skip] name|version`."""
        ttl = None
        if self.accept("ttl"):
            word = self.word()
            if word.text not in ("loose", "skip"):
                raise NftError("invalid ttl option", word.loc)
            ttl = word.text
        key = self.keyword(("name", "version"), "EXPR_OSF")
        return Osf(key.text, ttl), osf.loc.to(key.loc)

    def rt_expr(self, rt: Token, family: str):
        """`rt [ip|ip6] mtu|classid|nexthop|ipsec`, or a routing header field
        (`rt seg-left`); nft lists `rt ip mtu` as `rt mtu`, and `rt nexthop` with
        the network protocol it took (expr_evaluate_rt())."""
        word = self.keyword(RT_KEYS + ("ip", "ip6") + RT_HDR_FIELDS, "EXPR_RT")
        if word.text in RT_HDR_FIELDS:
            return Exthdr6("rt", word.text), rt.loc.to(word.loc)
        key = self.keyword(RT_KEYS, "EXPR_RT") if word.text in ("ip", "ip6") else word
        loc = rt.loc.to(key.loc)
        if key.text == "mtu" and word.text == "ip6":
            raise NftError(f"{self.text_from(rt)} is not modelled by the mock kernel", loc)
        if key.text != "nexthop":
            return Rt(key.text), loc
        context = family if family in ("ip", "ip6") else _network_of(self.rule_stmts)
        net = word.text if word.text in ("ip", "ip6") else context
        if net is None:
            raise NftError('cannot determine ip protocol version, use "ip nexthop" or "ip6 nexthop" instead', loc)
        if context is not None and net != context:
            raise NftError(f"{net} nexthop will not match", loc)
        return Rt("nexthop", net), loc

    def meta_key(self, meta: Token) -> Token:
        """The key after `meta`: a STRING meta_key_parse() looks up (src/meta.c), naming
        every key it knows when it knows none by that name."""
        self._expand_variable()
        key = self.tok
        if key.kind != "str" or (key.text not in META_KEYS and key.name_in("META") != "string"):
            raise self.unexpected(scope="META")
        self.next()
        if key.text in META_KEY_ALIASES:  # meta_key_parse()'s backwards compat names
            return replace(key, text=META_KEY_ALIASES[key.text])
        if key.text not in META_KEYS:
            raise NftError(f"syntax error, unexpected {key.text}, known keys are {', '.join(META_KEYS)}",
                           meta.loc.to(key.loc))
        return key

    def text_from(self, first: Token) -> str:
        """The input from `first` to the last token read, as written."""
        loc = first.loc.to(self.tokens[self.pos - 1].loc)
        return loc.source.lines[loc.line - 1][loc.first - 1:loc.last]

    def selector_chain(self, family: str):
        first, _ = self.selector(family)
        parts = [first]
        while self.accept("."):
            parts.append(self.selector(family)[0])
        return Concat(parts) if len(parts) > 1 else first

    def located_selector_chain(self, family: str) -> tuple:
        """selector_chain() and where it was written."""
        start = self.tok
        chain = self.selector_chain(family)
        return chain, start.loc.to(self.tokens[self.pos - 1].loc)

    def stmt_expression(self, family: str) -> Stmt:
        """A match (`lhs [op] rhs`), a verdict map, or a set statement."""
        lhs, lhs_loc = self.selector(family)
        parts = [lhs]
        while self.accept("."):
            parts.append(self.selector(family)[0])
        if len(parts) > 1:
            lhs = Concat(parts)
        if self.at("set") and len(parts) == 1:
            return self.stmt_set(lhs, lhs_loc, family)
        tree = None
        if len(parts) == 1 and self.at("|", "^", "<<", ">>"):
            tree = self.binop_tail(lhs, family)
            lhs = self.evaluate_binop(tree, lhs.dtype, lhs_loc.to(self.tokens[self.pos - 1].loc))
            if lhs.__class__ is nft_bitwise.Shift:
                raise NftError("a shifted value in a relation is not modelled by the mock kernel", lhs_loc)
        mask = None
        if self.accept("&"):
            mask = self.mask_value(lhs)
        if self.accept("vmap"):
            return VerdictMap(lhs, self.set_ref(lhs, family, "verdict"), loc=lhs_loc)
        op = "implicit"
        if self.at(*RELATIONAL_OPS):
            op = self.next().text
        elif self.at("!") and lhs.dtype is not None and lhs.dtype.bitmask:
            op = self.next().text
        if self.at_end_of_stmt():
            raise self.unexpected()
        if op == "!" and (mask is not None or tree is not None):  # expr_evaluate_relational(), OP_NEG
            raise NftError("cannot combine negation with binary expression",
                           lhs_loc.to(self.tokens[self.pos - 2].loc), (self.tok.loc,))
        if isinstance(lhs, Fib) and self.at("exists", "missing"):  # NFTA_FIB_F_PRESENT
            lhs = Fib(lhs.flags, lhs.result, types.boolean, present=True)
        rhs_at = self.pos
        try:
            match = self.relational(lhs, op, mask, family)
        except NftError as err:
            following = self.tokens[rhs_at + 1]
            if err.loc == self.tokens[rhs_at].loc and not err.message.startswith("syntax error") and \
                    (following.kind != "op" or following.text in (";", "}")):
                err.resume_at = rhs_at + 1  # a one-token value: the statement ends with it
            raise
        if tree is not None:
            match = _binop_transfer(match, tree, self)
        match.loc = lhs_loc
        return match

    def binop_tail(self, left, family: str, loosest: int = 4):
        """`left op operand ...` as parser_bison.y's shift/and/exclusive_or/
        inclusive_or expressions group it (C's precedences): a tree of
        (op, left, right) over selectors and constant tokens."""
        while self.tok.kind == "op" and nft_bitwise.PRECEDENCE.get(self.tok.text, 99) <= loosest:
            op = self.next().text
            right = self.binop_operand(family)
            while self.tok.kind == "op" and nft_bitwise.PRECEDENCE.get(self.tok.text, 99) < \
                    nft_bitwise.PRECEDENCE[op]:
                right = self.binop_tail(right, family, nft_bitwise.PRECEDENCE[op] - 1)
            left = (op, left, right)
        return left

    def binop_operand(self, family: str):
        """primary_stmt_expr: `( expr )`, a selector, or a constant token."""
        self._expand_variable()
        if self.accept("("):
            node = self.binop_tail(self.binop_operand(family), family)
            self.expect(")")
            return node
        if self.at(*SELECTOR_WORDS):
            return self.selector(family)[0]
        if self.at_end_of_stmt():
            raise self.unexpected()
        return self.next()

    def evaluate_binop(self, tree, dtype, loc: Location):
        try:
            return nft_bitwise.evaluate(tree, dtype, _parse)
        except ValueError as err:
            raise NftError(str(err), loc) from None

    def mask_value(self, lhs) -> int:
        self._expand_variable()
        if self.accept("("):
            value = self.flag_list(lhs.dtype, "|")
            self.expect(")")
            return value
        return self.flag_list(lhs.dtype, "|")

    def flag_list(self, dtype, separator: str) -> int:
        value = _parse(self.next(), dtype)
        while self.accept(separator):
            value |= _parse(self.next(), dtype)
        return value

    def relational(self, lhs, op: str, mask: int | None, family: str) -> Match:
        self._expand_variable()
        if self.at("{", "@"):
            if op not in ("implicit", "==", "!="):
                raise self.unexpected()
            ref = self.set_ref(lhs, family)
            return _simplify_set(lhs, op, ref, mask)
        if isinstance(lhs, Concat):
            raise self.unexpected("'{'")
        dtype = lhs.dtype
        if dtype.bitmask and op in ("implicit", "==", "!=", "!"):
            value = self.flag_value(dtype, op)
            if isinstance(value, tuple):  # `value / mask`
                return Match(lhs, "!=" if op == "!=" else "==", Value(value[0]), mask=value[1])
            if mask == dtype.max:  # `& (all flags)` masks nothing: evaluation drops it
                mask = None
            if mask is not None:
                return Match(lhs, "==" if op == "implicit" else op, Value(value), mask=mask)
            return Match(lhs, op, Value(value))
        if dtype is types.classid:
            self._scan_classid()
        value = resolve(self.rhs_value(), dtype)
        if mask is not None:
            # nft lists `ether daddr & m == v` as written, an address's mask as a prefix
            if dtype.prefix_ok and dtype is not types.ether_addr and isinstance(value, Value) \
                    and _is_prefix_mask(mask, dtype.size):
                return Match(lhs, "==" if op == "implicit" else op,
                             Prefix(value.value & mask, bin(mask).count("1")))
            return Match(lhs, "==" if op == "implicit" else op, value, mask=mask)
        if isinstance(value, Prefix) and value.plen == dtype.size:
            value = Value(value.addr)
        if isinstance(value, (Range, Prefix)) and op not in ("implicit", "==", "!="):
            raise self.unexpected()
        return Match(lhs, op, value)

    def flag_value(self, dtype, op: str):
        """Bits: `a,b`, `a|b`, `(a|b)`, or `value / mask`."""
        if self.accept("("):
            value = self.flag_list(dtype, "|")
            self.expect(")")
            return value
        value = _parse(self.next(), dtype)
        while self.at(",", "|"):
            self.next()
            value |= _parse(self.next(), dtype)
        if self.accept("/"):
            mask = _parse(self.next(), dtype)
            while self.accept(","):
                mask |= _parse(self.next(), dtype)
            return value, mask
        return value

    def set_ref(self, lhs, family: str, data_type=None) -> SetRef:
        """`@name` or an anonymous set `{ ... }` typed by the left side; a map's
        `data_type` is "verdict", a type, or a function of the elements
        written that gives it (a NAT map's data is what its elements are).
        A bare `ct original saddr` (NFT_CT_SRC/DST) can key no lookup
        (evaluate.c expr_evaluate_map(), expr_evaluate_concat(),
        expr_evaluate_relational())."""
        for part in (lhs.parts if isinstance(lhs, Concat) else (lhs,)):
            if isinstance(part, CtAddr) and part.bare_loc is not None:
                raise NftError("specify either ip or ip6 for address matching", part.bare_loc)
        if self.accept("@"):
            at = self.tokens[self.pos - 1]
            name = self.identifier(scope="AT")
            return SetRef(None, name.text, loc=at.loc.to(name.loc))
        start = self.tok
        if self.at("{") and self.peek().text == "}" and self.peek().kind == "op":  # set_expr has an element
            self.next()
            raise self.unexpected()
        syntax = self.element_block()
        key_types = [p.dtype for p in lhs.parts] if isinstance(lhs, Concat) else [lhs.dtype]
        self.anon_sets += 1
        nset = NftSet(f"__set{self.anon_sets}", key_types, anonymous=True,
                      data_type=data_type(syntax) if callable(data_type) else data_type)
        interval = any(sym.kind in ("range", "prefix") for e in syntax for sym in e.key)
        if interval:
            nset.flags.add("interval")
        elements = resolve_elements(syntax, nset)
        try:
            add_elements(nset, elements, 0.0, merge=True)
        except SetError as err:
            raise element_error(err, syntax, start.loc) from None
        one_range = len(syntax) == 1 and len(syntax[0].key) == 1 and syntax[0].key[0].kind == "range"
        return SetRef(nset, loc=start.loc.to(self.tokens[self.pos - 1].loc), written=len(syntax), one_range=one_range)

    def stmt_set(self, lhs, lhs_loc: Location, family: str) -> Stmt:
        """`meta mark|priority set V`, `ct mark set V`, `ip ttl|dscp set V`; V may be
        `meta mark`, `ct mark` or a map lookup; `tcp option maxseg size set N|rt mtu`."""
        if isinstance(lhs, Rt):  # the grammar has no rt statement
            raise self.unexpected()
        self.next()
        self._expand_variable()
        if self.at("{"):  # a statement's value is a stmt_expr: no set
            raise self.unexpected()
        if isinstance(lhs, Meta) and lhs.key in ("mark", "nftrace", "priority"):
            return MetaSet(lhs.key, self.set_value(lhs.dtype, family), loc=lhs_loc)
        if isinstance(lhs, Ct) and lhs.key == "mark":
            return CtSet("mark", self.set_value(lhs.dtype, family), loc=lhs_loc)
        if isinstance(lhs, nft_ct.CtKey) and lhs.key in nft_ct.SETTABLE:
            return nft_ct.CtKeySet(lhs, self.set_value(lhs.dtype, family), loc=lhs_loc)
        if isinstance(lhs, TcpOption) and lhs.field == "size":
            if self.at("rt"):
                return TcpOptionSet(lhs, self.selector(family)[0], loc=lhs_loc)
            return TcpOptionSet(lhs, _parse(self.next(), lhs.dtype), loc=lhs_loc)
        if isinstance(lhs, Payload) and len(lhs.fields) == 1 and lhs.proto not in NOT_SETTABLE:
            keyword_value = self.at(*KEYWORD_VALUES) and (self.peek().kind in ("nl", "eof") or
                                                          self.peek().text in (";", "}"))
            if self.at(*SELECTOR_WORDS) and not keyword_value:
                self.payload_from_map(lhs, lhs_loc, family)
            if self.at("{"):  # the grammar's payload_stmt takes an expression, no set
                raise self.unexpected()
            return PayloadSet(lhs.field, _parse(self.operand(), lhs.dtype), loc=lhs_loc)
        if isinstance(lhs, RawPayload) and lhs.aligned and not self.at(*SELECTOR_WORDS):
            return RawPayloadSet(lhs, _parse(self.operand(), lhs.dtype), loc=lhs_loc)
        raise NftError(f"setting {lhs.text(_PRINT)} is not modelled by the mock kernel", lhs_loc)

    def payload_from_map(self, lhs: Payload, lhs_loc: Location, family: str) -> None:
        """nft 1.0.6 refuses a header field set from a map, with these errors
        (stmt_evaluate_payload()'s shift of the value, and its range check)."""
        value = self.set_value(lhs.dtype, family)
        if not isinstance(value, MapExpr):
            raise NftError(f"setting {lhs.text(_PRINT)} from an expression is not modelled by the mock kernel",
                           lhs_loc)
        if lhs.field.shift:
            raise NftError("Binary operation (<<) is undefined for map expressions", value.loc, (lhs_loc,))
        raise NftError(f"Value {lhs.field.bits} exceeds valid range 0-0", lhs_loc)

    def set_value(self, dtype, family: str):
        """A set statement's value: a constant, `meta mark`, `ct mark`, or `key map ...`."""
        binops = tuple(nft_bitwise.PRECEDENCE)
        if self.at("{"):  # parser_bison.y: a set statement takes no set
            raise self.unexpected()
        keyword_value = self.at(*KEYWORD_VALUES) and (self.peek().kind in ("nl", "eof") or self.peek().text in (";", "}"))
        if not self.at(*SELECTOR_WORDS, "(") or keyword_value:
            if self.at_end_of_stmt():
                raise self.unexpected()
            if dtype is types.classid:
                self._scan_classid()
            value = self.next()
            if self.at("map"):
                raise NftError("No symbol type information", value.loc)
            if self.at(*binops):  # constants: folded
                return self.evaluate_binop(self.binop_tail(value, family), dtype,
                                           value.loc.to(self.tokens[self.pos - 1].loc))
            if dtype.bitmask and self.at(","):  # `ct event set new,related`: a list of bits
                bits = _parse(value, dtype)
                while self.accept(","):
                    bits |= _parse(self.next(), dtype)
                return bits
            return _parse(value, dtype)
        start = self.tok
        source = self.binop_operand(family) if self.at("(") else self.selector_chain(family)
        if self.at(*binops) or isinstance(source, tuple):
            source = self.binop_tail(source, family)
            loc = start.loc.to(self.tokens[self.pos - 1].loc)
            source = self.evaluate_binop(source, dtype, loc)
            if not isinstance(source, Selector):
                return source
        loc = start.loc.to(self.tokens[self.pos - 1].loc)
        if self.at("map"):
            return self.map_expr(source, loc, family, (dtype,))
        if isinstance(source, (Numgen, Jhash, Symhash, Osf)):
            return source
        if not (isinstance(source.loaded(), (Meta, Ct)) and source.loaded().key == "mark"):
            raise NftError("only `meta mark`, `ct mark` and maps are modelled as values to set", loc)
        return source

    def map_expr(self, key, key_loc: Location, family: str, wants: tuple, data_type=None) -> MapExpr:
        """`key map @m` or `key map { k : v, ... }`: `wants` are the data
        types the statement takes; an anonymous map's is `data_type` (a type,
        or a function of the elements), else the first of them."""
        self.expect("map")
        self._expand_variable()
        if not self.at("{", "@"):
            raise self.unexpected()
        ref = self.set_ref(key, family, data_type or wants[0])
        return MapExpr(key, ref, wants, key_loc.to(self.tokens[self.pos - 1].loc), key_loc)


END_OF_RULE = "end of file or newline or semicolon"
# parser_bison.y keyword_expr: keywords a value may be (`vlan type set arp`, `ether type ip`)
KEYWORD_VALUES = ("ether", "ip", "ip6", "vlan", "arp", "dnat", "snat", "ecn", "reset", "original", "reply",
                  "label", "last")
RULE_ENDING_OPS = {":", ",", "]", ")", "=", ".", "==", "!=", "<", ">", "<=", ">="}  # no statement starts so
# the scanner scope a statement keeps open while bison reads the token after it
STATEMENT_SCOPES = {"snat": "STMT_NAT", "dnat": "STMT_NAT", "masquerade": "STMT_NAT", "redirect": "STMT_NAT",
                    "log": "STMT_LOG", "counter": "COUNTER", "limit": "LIMIT", "reject": "STMT_REJECT",
                    "quota": "QUOTA", "synproxy": "STMT_SYNPROXY", "tproxy": "STMT_TPROXY", "queue": "EXPR_QUEUE",
                    "dup": "STMT_DUP", "fwd": "STMT_FWD"}
SELECTOR_WORDS = set(PAYLOAD_FIELDS) | {"meta", "ct", "fib", "rt", "exthdr", "ipsec", "osf", "numgen",
                                               "jhash", "symhash", "socket"} | set(EXTHDR6_WORDS) | META_UNQUALIFIED
# the keywords a statement can start with (parser_bison.y stmt and its primary expressions)
STATEMENT_WORDS = SELECTOR_WORDS | NOT_MODELLED | set(STATEMENT_SCOPES) | set(HEADER_FIELDS) | {
    "accept", "drop", "continue", "return", "jump", "goto", "notrack", "comment", "reset", "vlan", "arp",
    "tcp", "icmpx", "ether", "th", "random", "priority", "dup", "fwd", "queue", "last", "add", "update", "delete",
    "meter", "flow"}


def _binop_transfer(match: Match, tree, parser: Parser) -> Match:
    """evaluate.c binop_transfer(): a left side written ending in `^ c`
    compared with a value or a range compares what is under it with the
    value ^ c; a bare `&` left is the match's mask."""
    op, inner, const = tree
    if op == "^" and isinstance(match.rhs, (Value, Range)):
        lhs = parser.evaluate_binop(inner, match.lhs.dtype, match.loc)
        xor = nft_bitwise.evaluate(const, lhs.dtype, _parse)
        rhs = Value(match.rhs.value ^ xor) if isinstance(match.rhs, Value) else \
            Range(match.rhs.low ^ xor, match.rhs.high ^ xor)
        match = Match(lhs, match.op, rhs, loc=match.loc)
    lhs = match.lhs
    if isinstance(lhs, nft_bitwise.Bitwise) and [op for op, _ in lhs.parts()] == ["&"] and match.mask is None:
        return Match(lhs.expr, "==" if match.op == "implicit" else match.op, match.rhs, mask=lhs.mask, loc=match.loc)
    return match


def _nat_data_type(syntax: list[ElementSyntax], nat_types: tuple):
    """An anonymous NAT map's data of the NAT family's types: addresses,
    address ranges, `address . port`, or that with a range or prefix for
    either (evaluate.c expr_evaluate_map(): the data an interval
    concatenation), as its elements are written."""
    address, concat, interval, concat_interval = nat_types
    if any(isinstance(elem.data, list) for elem in syntax):
        ranged = any(sym.kind != "value" for elem in syntax if isinstance(elem.data, list) for sym in elem.data)
        return concat_interval if ranged else concat
    if any(isinstance(elem.data, Sym) and elem.data.kind != "value" for elem in syntax):
        return interval
    return address


def _is_prefix_mask(mask: int, bits: int) -> bool:
    inverted = ((1 << bits) - 1) ^ mask
    return inverted & (inverted + 1) == 0


def _simplify_set(lhs, op: str, ref: SetRef, mask: int | None) -> Match:
    """An anonymous set of one element is a plain comparison (nft's set
    evaluation); of one range, a range."""
    nset = ref.set
    if ref.name is None and ref.written == 1 and not isinstance(lhs, Concat) and mask is None:
        elem = nset.elements[0]
        if nset.interval and (elem.key != elem.high or ref.one_range):  # expr_evaluate_set(): the key as written
            return Match(lhs, op, Range(elem.key, elem.high))
        return Match(lhs, "implicit" if op == "implicit" else op, Value(elem.key))
    return Match(lhs, op, ref, mask=mask)


def _name_expected(op: str, obj: str) -> str:
    """What bison expects where a command names its table, chain or set."""
    return "handle or string" if op == "delete" and obj in DELETE_BY_HANDLE else "string"


def std_prio_lookup(name: str, family: str, hook: str) -> int | None:
    """src/rule.c std_prio_lookup() with nft 1.0.6's family/hook check."""
    for prio_name, value in _std_prios(family):
        if prio_name == name and std_prio_compat(value, family, hook):
            return value
    return None


def _std_prios(family: str) -> tuple:
    return BRIDGE_STD_PRIOS if family == "bridge" else STD_PRIOS


def std_prio_compat(value: int, family: str, hook: str) -> bool:
    if family == "bridge":
        return BRIDGE_PRIO_HOOKS[value] in (None, hook)
    if value == 0:
        return True
    if family not in ("ip", "ip6", "inet"):
        return False
    if value == -100:
        return hook == "prerouting"
    if value == 100:
        return hook == "postrouting"
    return True


def prio_text(value: int, family: str, hook: str) -> str:
    """src/rule.c prio2str(): a standard name within 10 of the value."""
    for name, std in _std_prios(family):
        offset = value - std
        if abs(offset) <= 10:
            if not std_prio_compat(std, family, hook):
                break
            return name + (f" + {offset}" if offset > 0 else f" - {-offset}" if offset < 0 else "")
    return str(value)


# ------------------------------------------------------------------ evaluation

def evaluate_rule(stmts: list[Stmt], family: str) -> list[Stmt]:
    """What nft's evaluate.c does to a rule before linearizing it: each header
    match gets its protocol dependency unless an earlier match already
    established it (conflicting ones are an error; icmp and icmpv6 take the
    network protocol of their family in an inet table, IPv6 extension
    headers need IPv6), icmp's echo fields get the echo types in front,
    reject and NAT take the rule's network protocol, NAT port mappings need
    a transport protocol, then adjacent payload matches are merged."""
    out: list[Stmt] = []
    l4 = link = l4_loc = None
    link_header = False  # `meta iiftype ether` matched: ether and vlan fields can be read
    l4_protos: list[str] = []  # the transport protocols an anonymous set of them established
    net = family if family in ("ip", "ip6", "arp") else None
    net_loc = None  # the statement that set the network protocol, where nft underlines a conflict
    icmp_types: dict[str, int | None] = {}  # icmp protocol -> the type a match pinned (None: a set)
    for stmt in stmts:
        if isinstance(stmt, Match) and isinstance(stmt.lhs, RawPayload):
            ambiguous = len(set(l4_protos)) > 1  # a set of transport protocols: `th` names the field
            raw, stmt = stmt, nft_payload_raw.evaluate(stmt, "set" if ambiguous else l4, net)
            if stmt is None:
                raise NftError("a raw payload off byte boundaries compared with a set or range is not modelled "
                               "by the mock kernel", raw.loc)
        if isinstance(stmt, RawPayloadSet):  # payload_expr_complete(): the field the rule's protocols name
            # a transport field with no protocol established is `th`'s, as for a set of them
            field = nft_payload_raw.known_field(stmt.lhs, "set" if len(set(l4_protos)) > 1 or not l4 else l4, net)
            stmt = stmt if field is None else stmt.as_field(field)
        if isinstance(stmt, Nat) and (stmt.ports or stmt.port_map) and not l4:
            raise NftError("transport protocol mapping is only valid after transport protocol match",
                           stmt.port_loc, (stmt.loc,))
        if isinstance(stmt, Nat) and stmt.port_error is not None:
            raise stmt.port_error
        if isinstance(stmt, Nat) and _maps_to_ports(stmt) and not l4:  # stmt_evaluate_nat_map()
            raise NftError("transport protocol mapping is only valid after transport protocol match",
                           stmt.addr_map.loc, (stmt.loc,))
        for part in selector_parts(stmt):
            if isinstance(part, CtAddr) and part.bare_loc is None and net is not None and net != part.family:
                # expr_evaluate_ct(): `ct original ip saddr` after a match of the other IP version
                raise NftError(f"conflicting protocols specified: {net} vs. {part.family}", stmt.loc,
                               (net_loc,) if net_loc else ())
            if isinstance(part, Exthdr6):
                if net == "ip":
                    raise NftError("cannot use exthdr with ip", stmt.loc)
                if part.invalid is not None:
                    raise part.invalid
                if net is None and family == "inet":
                    out.append(_dependency(family, "ip6"))
                    net, net_loc = "ip6", stmt.loc
            if not isinstance(part, Payload):
                continue
            payload = part
            if payload.link:
                if family not in LINK_FAMILIES and not link_header:
                    out.append(_link_header_dependency())
                    link_header = True
                link = _link_dependency(out, link, payload, stmt)
            elif not payload.transport:
                if net is not None and net != payload.proto:
                    raise NftError(f"conflicting protocols specified: {net} vs. {payload.proto}", stmt.loc)
                if net is None and family == "inet" and payload.proto == "arp":
                    raise NftError("conflicting protocols specified: inet vs. arp", stmt.loc)
                if net is None and link_header and family in ("inet", "netdev"):
                    # the link layer is known to be Ethernet: its type field says the protocol
                    out.append(Match(Payload((ETHER_TYPE,)), "implicit", Value(NETWORK_ETHERTYPES[payload.proto])))
                    link, net_loc = "ether", stmt.loc
                elif net is None:
                    out.append(_dependency(family, payload.proto))
                    net_loc = stmt.loc
                net = payload.proto
            elif payload.proto in L4PROTOS:
                if len(set(l4_protos)) > 1:  # proto_ctx_is_ambiguous(): `meta l4proto { tcp, udp } tcp dport 1`
                    other = next(p for p in l4_protos if p != payload.proto)
                    raise NftError(f"conflicting protocols specified: {other} vs. {payload.proto}", stmt.loc)
                if payload.proto in ICMP_NETWORK and net is None and family == "inet" and l4 is None:
                    out.append(_dependency(family, ICMP_NETWORK[payload.proto]))
                    net, net_loc = ICMP_NETWORK[payload.proto], stmt.loc
                elif payload.proto in nft_proto.NETWORK_OF and net is None and l4 is None \
                        and family in LINK_DEPENDENCY_FAMILIES:
                    net, net_loc = nft_proto.NETWORK_OF[payload.proto], stmt.loc
                    out.append(_link_network_dependency(family, net))
                abort = nft_proto.nexthdr_abort(payload.proto, payload.field.name)
                if abort and isinstance(stmt, Match) and stmt.op in ("implicit", "==") \
                        and isinstance(stmt.rhs, (Value, SetRef)):
                    raise NftError(abort, stmt.loc)
                if l4 is None:
                    out.append(Match(Meta("l4proto"), "implicit", Value(L4PROTOS[payload.proto])))
                    l4 = payload.proto
                elif l4 != payload.proto:
                    raise NftError(f"conflicting protocols specified: {l4} vs. {payload.proto}", stmt.loc)
                if (payload.proto, payload.field.name) in ICMP_DEP_TYPES:
                    _icmp_dependency(payload, icmp_types, stmt, out)
                elif payload.field.name == "type" and isinstance(stmt, Match) and payload.proto in ECHO_TYPES \
                        and stmt.op in ("==", "implicit"):
                    pinned = isinstance(stmt.rhs, Value)
                    icmp_types[payload.proto] = icmp_th_dep_type(payload.proto, stmt.rhs.value) if pinned else None
        if isinstance(stmt, Reject):
            net = _evaluate_reject(stmt, family, net, net_loc, out)
        if isinstance(stmt, Tproxy):
            _evaluate_tproxy(stmt, family, net, net_loc, l4)
        if isinstance(stmt, Nat) and stmt.addr and isinstance(stmt.addr[0], Token):
            stmt.resolve_addresses(_nat_family(stmt, family, net, net_loc), _parse)
        if isinstance(stmt, Reject) and stmt.kind == "tcp reset" and l4 not in (None, "tcp"):
            raise NftError("you cannot use tcp reset with this protocol", stmt.keyword_loc or stmt.loc,
                           (l4_loc,) if l4_loc else ())  # stmt_evaluate_reset()
        if isinstance(stmt, Reject) and stmt.kind == "tcp reset" and l4 is None:
            out.insert(0, Match(Meta("l4proto"), "implicit", Value(L4PROTOS["tcp"])))  # stmt_reject_gen_dependency(): first
            l4 = "tcp"
        base = dependency_base(stmt)
        link_header = link_header or base == "ll"
        ether_type = base is not None and isinstance(stmt.lhs, Payload) and stmt.lhs.fields == (ETHER_TYPE,)
        if ether_type:
            link = "vlan" if stmt.rhs.value in VLAN_ETHERTYPES else "ether"
            if stmt.rhs.value in (0x0800, 0x86DD, 0x0806):
                net, net_loc = {0x0800: "ip", 0x86DD: "ip6", 0x0806: "arp"}[stmt.rhs.value], stmt.span or stmt.loc
        elif base == "transport":
            l4, l4_loc = l4_name(stmt.rhs.value), stmt.span or stmt.loc
        elif base == "network":  # the relational expression is where nft's protocol context points
            net, net_loc = ("ip" if stmt.rhs.value in (2, 0x0800) else "arp" if stmt.rhs.value == 0x0806
                            else "ip6"), stmt.span or stmt.loc
        elif _transport_set(stmt):
            # relational_expr_pctx_update(): each element of `meta l4proto { tcp, udp }` is a
            # transport protocol of the context, the last one its protocol (ambiguous)
            l4_protos = [l4_name(elem.key) for elem in stmt.rhs.set.elements]
            l4 = l4_protos[-1]
        out.append(stmt)
    return payload_merge(out)


def _maps_to_ports(nat: Nat) -> bool:
    """A NAT map to `address . port` whose key names no transport header field
    (evaluate.c nat_concat_map(), nat_evaluate_addr_has_th_expr(): `th` is none)."""
    addr_map = nat.addr_map
    if addr_map is None or addr_map.ref.set is None or not isinstance(addr_map.ref.set.data_type, types.ConcatType):
        return False
    keys = addr_map.key.parts if isinstance(addr_map.key, Concat) else [addr_map.key]
    return not any(isinstance(k, Payload) and k.transport and k.proto != "th" for k in keys)


def _transport_set(stmt: Stmt) -> bool:
    """`meta l4proto { tcp, udp }` or `ip protocol { ... }`: a match on an
    anonymous set of transport protocols."""
    return isinstance(stmt, Match) and stmt.op in ("==", "implicit") and stmt.mask is None \
        and isinstance(stmt.rhs, SetRef) and stmt.rhs.name is None and stmt.rhs.set is not None \
        and (isinstance(stmt.lhs, Meta) and stmt.lhs.key == "l4proto"
             or isinstance(stmt.lhs, Payload) and stmt.lhs.fields in ((PAYLOAD_FIELDS["ip"]["protocol"],),
                                                                      (PAYLOAD_FIELDS["ip6"]["nexthdr"],)))


def _evaluate_tproxy(stmt: Tproxy, family: str, net: str | None, net_loc, l4: str | None) -> None:
    """evaluate.c stmt_evaluate_tproxy(): a transport protocol first, an address or a
    port, in an inet table the address's family named, the address of that family."""
    if family not in ("ip", "ip6", "inet"):
        raise NftError("tproxy is only supported for IPv4/IPv6/INET", stmt.span)
    if l4 is None:
        raise NftError("Transparent proxy support requires transport protocol match", stmt.span)
    if family != "inet":
        if stmt.family not in (None, family):
            raise NftError(f"conflicting protocols specified: {family} vs. {stmt.family}. "
                           "You must specify ip or ip6 family in tproxy statement", stmt.span)
        stmt.family = family
    elif net is not None and stmt.family != net:  # stmt_evaluate_l3proto()
        raise NftError(f"conflicting protocols specified: {net} vs. {stmt.family or 'unknown'}. "
                       "You must specify ip or ip6 family in tproxy statement", stmt.span,
                       (net_loc,) if net_loc is not None else ())
    elif stmt.family is None and stmt.addr is not None:
        raise NftError("ip or ip6 must be specified with address for inet tables.", stmt.span)
    if isinstance(stmt.addr, Token):
        stmt.addr = _parse(stmt.addr, stmt.addr_type)


def _check_bridge_stmt(stmt: Stmt) -> None:
    """nft's evaluation of statements the bridge family cannot take (evaluate.c
    nat_evaluate_family()); `reject` there is checked in evaluate_rule()
    (stmt_evaluate_reject_bridge())."""
    if isinstance(stmt, Nat):
        raise NftError("NAT is only supported for IPv4/IPv6", stmt.loc)


def _link_header_dependency() -> Match:
    """payload.c payload_get_get_ll_hdr(): in an ip, ip6 or inet table an ether or
    vlan field needs the input device to be an Ethernet one, `meta iiftype ether`."""
    return Match(MetaKey("iiftype"), "implicit", Value(ARPHRD_ETHER))


def _link_dependency(out: list[Stmt], link: str | None, payload: Payload, stmt: Stmt) -> str | None:
    """A vlan header field's dependency, `ether type 8021q`, unless an earlier
    match established the tag (an `ether type` of another value is a conflict)."""
    if payload.proto != "vlan":
        return link
    if link is None:
        out.append(Match(Payload((ETHER_TYPE,)), "implicit", Value(ETH_P_8021Q)))
    elif link != "vlan":
        raise NftError("conflicting protocols specified: ether vs. vlan", stmt.loc)
    return "vlan"


ICMP_NETWORK = {"icmp": "ip", "icmpv6": "ip6"}
REJECT_NETWORK = {"icmp": "ip", "icmpv6": "ip6"}
# the reject without `with` of each network protocol (nft's evaluate.c stmt_evaluate_reject_default())
DEFAULT_REJECT = {"ip": ("icmp", 3), "ip6": ("icmpv6", 4), None: ("icmpx", 1)}


def _evaluate_reject(stmt: Reject, family: str, net: str | None, net_loc, out: list[Stmt]) -> str | None:
    """stmt_evaluate_reject(): `reject` alone rejects as the rule's network
    protocol does (icmpx in an inet or netdev table without one); `with icmp` or
    `with icmpv6` needs its protocol (in an inet table a `meta nfproto`, in a
    netdev table a `meta protocol` in front).
    Returns the network protocol after it."""
    if family == "bridge" and net not in (None, "ip", "ip6") and stmt.kind not in REJECT_NETWORK:
        # stmt_evaluate_reject_bridge_family(): only IPv4 and IPv6 packets are rejected
        raise NftError("cannot reject this network family", stmt.keyword_loc or stmt.loc, (net_loc,) if net_loc else ())
    if stmt.kind is None:
        stmt.kind, stmt.code = DEFAULT_REJECT[net]
        return net
    if stmt.kind == "icmpx" and family not in ("inet", "netdev", "bridge"):
        raise NftError("abstracted ICMP unreachable not supported", stmt.code_loc, (stmt.keyword_loc,))
    wants = REJECT_NETWORK.get(stmt.kind)
    if wants is None:
        return net
    if net is not None and net != wants:
        raise NftError("conflicting protocols specified: ip vs ip6", stmt.code_loc, (net_loc or stmt.keyword_loc,))
    if net is None and family in ("inet", "netdev"):
        out.insert(0, _dependency(family, wants))  # stmt_reject_gen_dependency(): at the rule's start
    return wants if family in ("inet", "netdev") else net


def _nat_family(stmt: Nat, family: str, net: str | None, net_loc) -> str:
    """The family of a NAT statement's addresses: its own (which must be the
    rule's network protocol), the table's, or in an inet table the rule's
    network protocol."""
    if stmt.family is not None and net is not None and stmt.family != net:
        raise NftError(f"conflicting protocols specified: {net} vs. {stmt.family}. You must specify ip or ip6 "
                       "family in nat statement", stmt.loc, (net_loc,) if net_loc else ())
    nat_family = stmt.family or (family if family in ("ip", "ip6") else net)
    if nat_family is None:
        raise NftError("ip or ip6 must be specified with address for inet tables.", stmt.loc)
    if family == "inet":
        stmt.family = nat_family
    return nat_family


def _icmp_dependency(payload: Payload, icmp_types: dict, stmt: Stmt, out: list[Stmt]) -> None:
    """payload.c payload_gen_icmp_dependency(): a field of one icmp type
    (proto.c's icmp_dep: `icmp mtu`, `icmpv6 id`) needs that type matched in
    front, `icmp type 3`, the echo fields `icmp[v6] type { echo-request,
    echo-reply }`, unless the rule matched the type already; one matched to
    another type is an error. `icmp_types` holds the type each icmp protocol
    is pinned to (None: matched to a set, which the mock does not follow)."""
    proto = payload.proto
    need = ICMP_DEP_TYPES[(proto, payload.field.name)]
    if proto in icmp_types:
        pinned = icmp_types[proto]
        if pinned is not None and pinned != need:
            raise NftError(f"incompatible icmp match: rule has {pinned}, need {need}", stmt.loc)
        return
    type_field = PAYLOAD_FIELDS[proto]["type"]
    if need in ECHO_TYPES[proto]:
        nset = NftSet("__set0", [type_field.dtype], anonymous=True)
        add_elements(nset, [Element(t) for t in ECHO_TYPES[proto]], 0.0, merge=True)
        out.append(Match(Payload((type_field,)), "implicit", SetRef(nset, written=2)))
    else:
        out.append(Match(Payload((type_field,)), "==", Value(need)))
    icmp_types[proto] = need


LINK_DEPENDENCY_FAMILIES = ("inet", "netdev", "bridge")  # where the network protocol is not the table's


def _link_network_dependency(family: str, network: str) -> Match:
    """The network protocol matched at the link layer's protocol key: `ether type`
    in the bridge family (payload_get_get_ll_hdr(): proto_eth), else _dependency()."""
    if family == "bridge":
        return Match(Payload((ETHER_TYPE,)), "implicit", Value(0x0800 if network == "ip" else 0x86DD))
    return _dependency(family, network)


NETWORK_ETHERTYPES = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806}


def _network_of(stmts: list[Stmt]) -> str | None:
    """The network protocol earlier matches of a rule established (`meta
    nfproto ipv4`, `meta protocol ip6`, an ip or ip6 header field)."""
    for stmt in reversed(stmts):
        if dependency_base(stmt) == "network":
            return "ip" if stmt.rhs.value in (2, 0x0800) else "ip6" if stmt.rhs.value in (10, 0x86DD) else None
        lhs = getattr(stmt, "lhs", None)
        if isinstance(lhs, Payload) and lhs.proto in ("ip", "ip6"):
            return lhs.proto
    return None


def _dependency(family: str, network: str) -> Match:
    """`meta nfproto` (inet) or `meta protocol` (netdev) for an ip, ip6 or arp match."""
    if family == "inet":
        return Match(Meta("nfproto"), "implicit", Value(2 if network == "ip" else 10))
    return Match(Meta("protocol"), "implicit", Value(NETWORK_ETHERTYPES[network]))


def parse(text: str, name: str | None = None, ctx: ParseCtx | None = None) -> list[Command]:
    """Parse a whole input: a `-f` file, or the command line joined by spaces
    (to which nft adds a newline)."""
    return Parser(text if name else text + "\n", name, ctx or ParseCtx()).parse()

