"""The tokens of google/packetdrill's script language, as its lexer.l makes them.

flex picks the longest match at each position and, between matches of one length,
the rule written first; keywords come first, so `ack` is the ACK keyword while
`acked` is a WORD, and `10.0.0.1` is an IPV4_ADDR although `10.0` is a FLOAT.
Comments (`//` to the end of the line, `/* */`) and whitespace separate tokens.
Each token keeps its line and column, so every error names where it happened.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# lexer.l's keyword rules: the text and the token the grammar sees
KEYWORDS = {
    "sa_family": "SA_FAMILY", "sin_port": "SIN_PORT", "sin_addr": "SIN_ADDR",
    "msg_name": "MSG_NAME", "msg_iov": "MSG_IOV", "msg_flags": "MSG_FLAGS",
    "msg_control": "MSG_CONTROL", "cmsg_data": "CMSG_DATA", "cmsg_level": "CMSG_LEVEL",
    "cmsg_type": "CMSG_TYPE", "ee_errno": "EE_ERRNO", "ee_origin": "EE_ORIGIN",
    "ee_type": "EE_TYPE", "ee_code": "EE_CODE", "ee_info": "EE_INFO", "ee_data": "EE_DATA",
    "scm_sec": "SCM_SEC", "scm_nsec": "SCM_NSEC", "fd": "FD", "u32": "U32", "u64": "U64",
    "ptr": "PTR", "events": "EVENTS", "revents": "REVENTS", "onoff": "ONOFF",
    "linger": "LINGER", "htons": "_HTONS_", "ipv4": "IPV4", "ipv6": "IPV6", "icmp": "ICMP",
    "udp": "UDP", "GREv0": "GRE", "gre": "GRE", "raw": "RAW", "sum": "SUM", "off": "OFF",
    "key": "KEY", "seq": "SEQ", "none": "NONE", "checksum": "CHECKSUM", "present": "PRESENT",
    "encap": "ENCAP", "psp": "PSP", "spi": "SPI", "mpls": "MPLS", "label": "LABEL",
    "tc": "TC", "ttl": "TTL", "inet_addr": "INET_ADDR", "inet6_addr": "INET6_ADDR",
    "ack": "ACK", "eol": "EOL", "ecr": "ECR", "mss": "MSS", "mtu": "MTU", "nop": "NOP",
    "sack": "SACK", "sackOK": "SACKOK", "md5": "MD5", "TS": "TIMESTAMP", "FO": "FAST_OPEN",
    "FOEXP": "FAST_OPEN_EXP", "ECN": "ACCECN", "e0b": "ACCECN_E0B", "e1b": "ACCECN_E1B",
    "ceb": "ACCECN_CEB", "tos": "TOS", "flowlabel": "FLOWLABEL", "flags": "FLAGS",
    "Flags": "FLAGS", "val": "VAL", "win": "WIN", "urg": "URG", "wscale": "WSCALE",
    "ect01": "ECT01", "ect0": "ECT0", "ect1": "ECT1", "noecn": "NO_ECN", "ce": "CE",
    "id": "ID",
}

_SEG = r"[0-9a-fA-F]{1,4}"
_IPV4 = r"[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+"
_IPV6 = "|".join((
    r"::", rf"(?:{_SEG}:){{7}}{_SEG}", rf"(?:{_SEG}:){{1,7}}:", rf"(?:{_SEG}:){{1,6}}:{_SEG}",
    rf"(?:{_SEG}:){{1,5}}(?::{_SEG}){{1,2}}", rf"(?:{_SEG}:){{1,4}}(?::{_SEG}){{1,3}}",
    rf"(?:{_SEG}:){{1,3}}(?::{_SEG}){{1,4}}", rf"(?:{_SEG}:){{1,2}}(?::{_SEG}){{1,5}}",
    rf"{_SEG}:(?::{_SEG}){{1,6}}", rf":(?::{_SEG}){{1,7}}", rf"::ffff:{_IPV4}",
    rf"::ffff:0{{1,4}}:{_IPV4}", rf"(?:{_SEG}:){{1,4}}:{_IPV4}",
))

# (token kind, pattern) in lexer.l's order: on equal lengths the earlier rule wins
_RULES = [(kind, re.compile(pattern)) for kind, pattern in (
    ("ELLIPSIS", r"\.\.\."),
    ("OPTION", r"--[a-zA-Z0-9_]+"),
    ("FLOAT", r"-?[0-9]*\.[0-9]+"),
    ("INTEGER", r"-?[0-9]+"),
    ("HEX_INTEGER", r"0x[0-9a-fA-F]+"),
    ("WORD", r"[a-zA-Z0-9_]+"),
    ("STRING", r'"(?:\\.|[^"])*"'),
    ("BACK_QUOTED", r"`(?:\\.|[^`])*`"),
    ("CHAR", r"[^ \t\n]"),
    ("SPACE", r"[ \t\n]+"),
    ("COMMENT", r"//[^\n]*(?:\n|$)"),
    ("COMMENT", r"/\*(?:[^*]|\*(?!/))*\*/"),
    ("CODE", r"%\{(?:[^}]|\}(?!%))*\}%"),
    ("IPV4_ADDR", _IPV4),
    ("IPV6_ADDR", rf"(?:{_IPV6})"),
)]

# what an unterminated construct starts with, and what it lacks
_UNTERMINATED = {'"': 'closing `"`', "`": "closing backquote", "/*": "`*/`", "%{": "`}%`"}


class ScriptSyntaxError(Exception):
    """A script the harness cannot run: the message names the file, the line and the
    token (packetdrill's own wording where it has one)."""

    def __init__(self, path: str, line: int, message: str, token: str | None = None):
        self.path, self.line, self.token = path, line, token
        where = f" at `{token}`" if token is not None else ""
        super().__init__(f"{path}:{line}: {message}{where}")


@dataclass(frozen=True)
class Token:
    kind: str          # a KEYWORDS value, one of the _RULES kinds, the character itself, or "EOF"
    text: str
    line: int
    column: int

    @property
    def integer(self) -> int:
        return int(self.text, 16) if self.kind == "HEX_INTEGER" else int(self.text)

    @property
    def inner(self) -> str:
        """A STRING's or BACK_QUOTED's text without its delimiters."""
        return self.text[1:-1]


def tokenize(text: str, path: str = "<script>") -> list[Token]:
    """Every token of `text`, comments and whitespace left out, then an EOF token."""
    tokens = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        kind, length = _longest_match(text, pos)
        lexeme = text[pos:pos + length]
        if kind == "CHAR":
            for opener, missing in _UNTERMINATED.items():
                if text.startswith(opener, pos):
                    raise ScriptSyntaxError(path, line, f"unterminated {opener!s}...: no {missing}", lexeme)
            kind = lexeme
        elif kind == "WORD":
            kind = KEYWORDS.get(lexeme, "WORD")
        if kind not in ("SPACE", "COMMENT"):
            tokens.append(Token(kind, lexeme, line, pos - line_start + 1))
        newlines = lexeme.count("\n")
        if newlines:
            line += newlines
            line_start = pos + lexeme.rindex("\n") + 1
        pos += length
    tokens.append(Token("EOF", "end of file", line, pos - line_start + 1))
    return tokens


def _longest_match(text: str, pos: int) -> tuple[str, int]:
    best_kind, best_length = "CHAR", 0
    for kind, pattern in _RULES:
        match = pattern.match(text, pos)
        if match and len(match.group()) > best_length:
            best_kind, best_length = kind, len(match.group())
    return best_kind, best_length
