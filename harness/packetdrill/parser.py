"""The grammar of packetdrill's parser.y, for the subset the harness runs.

    script   : [--option[=value]]... [`init command`] event... [`cleanup command`]
    event    : time action        time: t | +t | * | t~t | +t~+t (seconds)
    action   : < segment | > segment | [...t] syscall(args) = result [ERRNO] [(note)] | `command`
    segment  : [sport>dport] flags seq:end(len) [ack N] [win N] [<options> | <...>]
    option   : nop | eol | mss N | wscale N | sackOK | sack l:r... | TS val N ecr N

A construct packetdrill has and the harness does not (UDP/ICMP packets, IP headers in
the script, ECN, code snippets, TCP Fast Open, MD5, ...) is a ScriptSyntaxError naming
the line and the token, as is anything packetdrill itself rejects, in packetdrill's
words where it has them ("inconsistent TCP sequence numbers and payload size",
"window must be specified for inbound packets", ...).
"""
from __future__ import annotations

import re

from harness.packetdrill.lexer import ScriptSyntaxError, Token, tokenize
from harness.packetdrill.script import (
    TCPOPT_EOL,
    TCPOPT_MSS,
    TCPOPT_NOP,
    TCPOPT_SACK,
    TCPOPT_SACK_PERM,
    TCPOPT_TIMESTAMP,
    TCPOPT_WINDOW,
    Addressing,
    Command,
    Config,
    Event,
    EventTime,
    Expr,
    Script,
    Segment,
    Syscall,
    TcpOption,
    TimeKind,
)
from harness.packetdrill.symbols import CONSTANTS, ERRNOS, SYSCALLS
from harness.target import PORTS

# tcp_packet.c is_tcp_flags_spec_valid()'s letters but URG and AE
TCP_FLAG_LETTERS = "FSRP.EW"

# packetdrill options a script may set, and how their values read
OPTIONS = {"tolerance_usecs": int, "tolerance_percent": float, "bind_port": int, "connect_port": int,
           "tcp_ts_tick_usecs": int}

# the header comment that places the script (script.py Addressing)
HEADER = re.compile(r"^\s*//\s*packet-journey:(.*)$")
HEADER_KEYS = ("port", "local", "remote")

# tokens that start a construct the harness does not run, and what to say about them
UNSUPPORTED = {
    "(": "IP-level info (tos, ECN, ttl, flow label) in a segment",
    "[": "IP-level info (tos, ECN, ttl, flow label) in a segment",
    "IPV4": "an IPv4 header in the script", "IPV6": "IPv6",
    "GRE": "GRE encapsulation", "MPLS": "MPLS encapsulation", "ENCAP": "PSP encapsulation",
    "UDP": "UDP packets", "ICMP": "ICMP packets",
    "MD5": "the TCP MD5 option", "FAST_OPEN": "TCP Fast Open", "FAST_OPEN_EXP": "TCP Fast Open",
    "ACCECN": "the AccECN option", "CODE": "code snippets (%{ }%)", "URG": "urgent data (urg)",
}


def parse_file(path: str) -> Script:
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)


def parse(text: str, path: str = "<script>") -> Script:
    return _Parser(tokenize(text, path), path, _addressing(text, path)).script()


def _addressing(text: str, path: str) -> Addressing:
    """The `// packet-journey: key=value ...` header comment, if the script has one."""
    fields = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = HEADER.match(line)
        if not match:
            continue
        for word in match.group(1).split():
            key, sep, value = word.partition("=")
            if not sep or key not in HEADER_KEYS:
                raise ScriptSyntaxError(path, number, f"a packet-journey header takes {', '.join(HEADER_KEYS)} "
                                                      "as key=value", word)
            fields[key] = value
    port = fields.get("port", "p0")
    if port not in [p.name for p in PORTS]:
        raise ScriptSyntaxError(path, 1, f"no DUT port {port!r}; the ports are {[p.name for p in PORTS]}", port)
    return Addressing(**fields)


class _Parser:
    def __init__(self, tokens: list[Token], path: str, addressing: Addressing):
        self.tokens, self.pos, self.path, self.addressing = tokens, 0, path, addressing

    # token access -------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def accept(self, kind: str) -> Token | None:
        return self.take() if self.peek().kind == kind else None

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise self.error(f"expected {what}", token)
        return self.take()

    def error(self, message: str, token: Token) -> ScriptSyntaxError:
        """At the end of the file, the line is the last token's."""
        line = token.line if token.kind != "EOF" or len(self.tokens) == 1 else self.tokens[-2].line
        return ScriptSyntaxError(self.path, line, message, token.text)

    def unsupported(self, token: Token) -> ScriptSyntaxError:
        return self.error(f"not supported by the harness: {UNSUPPORTED[token.kind]}", token)

    def integer(self, what: str, bits: int) -> int:
        token = self.peek()
        if token.kind not in ("INTEGER", "HEX_INTEGER"):
            raise self.error(f"expected {what}", token)
        self.take()
        value = token.integer
        if not 0 <= value < 1 << bits:
            raise self.error(f"{what} out of range", token)
        return value

    # script ---------------------------------------------------------------------------
    def script(self) -> Script:
        config = self.options()
        script = Script(self.path, config, self.addressing)
        if self.peek().kind == "BACK_QUOTED":
            script.init_command = Command(self.take().inner)
        while self.peek().kind != "EOF":
            if self.peek().kind == "BACK_QUOTED" and self.peek(1).kind == "EOF":
                script.cleanup_command = Command(self.take().inner)
                break
            script.events.append(self.event())
        if not script.events:
            raise self.error("a script needs at least one event", self.peek())
        self.check_times(script.events)
        return script

    def check_times(self, events: list[Event]) -> None:
        """run.c get_next_event(): the first event is at time 0 and absolute times never
        go back."""
        first = events[0]
        if first.time.kind not in (TimeKind.ABSOLUTE, TimeKind.RELATIVE) or first.time.usecs != 0:
            raise ScriptSyntaxError(self.path, first.line, "first event should be at time 0")
        for before, event in zip(events, events[1:]):
            if before.time.kind is TimeKind.ABSOLUTE and event.time.kind is TimeKind.ABSOLUTE \
                    and event.time.usecs < before.time.usecs:
                raise ScriptSyntaxError(self.path, event.line, f"time goes backward in script from "
                                                               f"{before.time.usecs} usec to {event.time.usecs} usec")

    def options(self) -> Config:
        values = {}
        while self.peek().kind == "OPTION":
            token = self.take()
            name = token.text[2:]
            if name not in OPTIONS:
                raise self.error(f"option --{name} is not supported by the harness; it supports "
                                 + ", ".join(f"--{o}" for o in OPTIONS), token)
            self.expect("=", f"`=value` after --{name}")
            value = self.take()
            try:
                values[name] = OPTIONS[name](value.text)
            except ValueError:
                raise self.error(f"--{name} takes a number", value) from None
        return Config(**values)

    def event(self) -> Event:
        first = self.peek()
        time = self.event_time()
        token = self.peek()
        if token.kind in ("<", ">"):
            action = self.segment()
        elif token.kind == "BACK_QUOTED":
            action = Command(self.take().inner)
        elif token.kind in ("WORD", "ELLIPSIS"):
            action = self.syscall()
        elif token.kind in UNSUPPORTED:
            raise self.unsupported(token)
        else:
            raise self.error("expected a packet (< or >), a system call or a `command` after the time", token)
        outbound = isinstance(action, Segment) and not action.inbound
        if time.kind is TimeKind.ANY and not outbound:
            raise self.error("event time <star> can only be used with outbound packets", first)
        if time.kind in (TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE) and not outbound:
            raise self.error("event time range can only be used with outbound packets", first)
        return Event(first.line, time, action)

    def event_time(self) -> EventTime:
        if self.accept("*"):
            return EventTime(TimeKind.ANY)
        if self.accept("+"):
            start = self.time()
            if self.accept("~"):
                self.expect("+", "`+` before the end of a relative time range")
                return self.ranged(TimeKind.RELATIVE_RANGE, start)
            return EventTime(TimeKind.RELATIVE, start)
        start = self.time()
        if self.accept("~"):
            return self.ranged(TimeKind.ABSOLUTE_RANGE, start)
        return EventTime(TimeKind.ABSOLUTE, start)

    def ranged(self, kind: TimeKind, start: int) -> EventTime:
        end_token = self.peek()
        end = self.time()
        if end < start:
            raise self.error("time range is backwards", end_token)
        return EventTime(kind, start, end)

    def time(self) -> int:
        token = self.peek()
        if token.kind not in ("FLOAT", "INTEGER"):
            raise self.error("expected a time in seconds", token)
        self.take()
        seconds = float(token.text)
        if seconds < 0:
            raise self.error("negative time", token)
        return round(seconds * 1_000_000)

    # segments -------------------------------------------------------------------------
    def segment(self) -> Segment:
        inbound = self.take().kind == "<"
        token = self.peek()
        if token.kind in UNSUPPORTED:
            raise self.unsupported(token)
        src_port = dst_port = None
        if token.kind == "INTEGER" and self.peek(1).kind == ">":
            src_port = self.integer("src port", 16)
            self.take()
            dst_port = self.integer("dst port", 16)
        flags = self.flags()
        seq_token = self.peek()
        seq = self.integer("sequence number start:end(length)", 32)
        self.expect(":", "`:` in start:end(length)")
        end = self.integer("TCP end sequence number", 32)
        self.expect("(", "`(` in start:end(length)")
        payload = self.integer("TCP payload size", 16)
        self.expect(")", "`)` after the payload length")
        if end != (seq + payload) & 0xFFFFFFFF:
            raise self.error("inconsistent TCP sequence numbers and payload size", seq_token)
        ack = window = None
        if self.accept("ACK"):
            ack = self.integer("TCP ack sequence number", 32)
        if self.accept("WIN"):
            window = self.integer("TCP window value", 16)
        elif inbound:
            raise self.error("window must be specified for inbound packets", self.peek())
        if self.peek().kind == "URG":
            raise self.unsupported(self.peek())
        options = self.tcp_options(inbound)
        if "." in flags and ack is None:
            raise self.error("an ACK segment needs `ack N`", self.peek())
        return Segment(inbound, flags, seq, payload, ack, window, options, src_port, dst_port)

    def flags(self) -> str:
        token = self.take()
        if token.kind == "-":
            return ""
        if token.kind == ".":
            return "."
        if token.kind != "WORD":
            raise self.error("expected TCP flags (S, S., P., F., R, ., -, ...)", token)
        if self.peek().kind == "FLOAT":
            raise self.error("not supported by the harness: AccECN ACE counts in the flags", self.peek())
        flags = token.text + ("." if self.accept(".") else "")
        bad = [c for c in flags if c not in TCP_FLAG_LETTERS]
        if bad and bad[0] in "AU":
            raise self.error(f"not supported by the harness: the {'AE' if bad[0] == 'A' else 'URG'} flag", token)
        if bad:
            raise self.error(f"Invalid TCP flag: '{bad[0]}'", token)
        return flags

    def tcp_options(self, inbound: bool) -> tuple[TcpOption, ...] | None:
        if not self.accept("<"):
            return ()
        if self.peek().kind == "ELLIPSIS":
            token = self.take()
            if inbound:
                raise self.error("<...> for TCP options can only be used with outbound packets", token)
            self.expect(">", "`>` after `<...`")
            return None
        options = [self.tcp_option()]
        while self.accept(","):
            options.append(self.tcp_option())
        closing = self.expect(">", "`,` or `>` in the TCP options")
        excess = sum(option.length for option in options) % 4
        if excess:
            raise self.error("TCP options are not padded correctly to ensure TCP header is a multiple "
                             f"of 4 bytes: {excess} excess bytes", closing)
        return tuple(options)

    def tcp_option(self) -> TcpOption:
        token = self.take()
        if token.kind == "NOP":
            return TcpOption(TCPOPT_NOP)
        if token.kind == "EOL":
            return TcpOption(TCPOPT_EOL)
        if token.kind == "MSS":
            return TcpOption(TCPOPT_MSS, self.integer("mss value", 16))
        if token.kind == "WSCALE":
            return TcpOption(TCPOPT_WINDOW, self.integer("window scale shift count", 8))
        if token.kind == "SACKOK":
            return TcpOption(TCPOPT_SACK_PERM)
        if token.kind == "SACK":
            blocks = []
            while self.peek().kind == "INTEGER":
                left = self.integer("TCP SACK left sequence number", 32)
                self.expect(":", "`:` in a SACK block left:right")
                blocks.append((left, self.integer("TCP SACK right sequence number", 32)))
            if not blocks:
                raise self.error("expected SACK blocks left:right", self.peek())
            return TcpOption(TCPOPT_SACK, blocks=tuple(blocks))
        if token.kind == "TIMESTAMP":
            self.expect("VAL", "`val` in TS val N ecr N")
            val = self.integer("ts val", 32)
            self.expect("ECR", "`ecr` in TS val N ecr N")
            return TcpOption(TCPOPT_TIMESTAMP, val=val, ecr=self.integer("ecr val", 32))
        if token.kind in UNSUPPORTED:
            raise self.unsupported(token)
        raise self.error("expected a TCP option (nop, eol, mss, wscale, sackOK, sack, TS)", token)

    # system calls --------------------------------------------------------------------
    def syscall(self) -> Syscall:
        end_usecs = None
        if self.accept("ELLIPSIS"):
            end_usecs = self.time()
        name_token = self.expect("WORD", "a system call name")
        name = name_token.text
        if name not in SYSCALLS:
            raise self.error(f"system call {name}() is not supported by the harness; it runs "
                             + ", ".join(SYSCALLS), name_token)
        self.expect("(", f"`(` after {name}")
        args = []
        if not self.accept(")"):
            args.append(self.expression())
            while self.accept(","):
                args.append(self.expression())
            self.expect(")", "`,` or `)` in the arguments")
        counts = SYSCALLS[name]
        if len(args) not in (counts if isinstance(counts, tuple) else (counts,)):
            raise self.error(f"{name}() takes {' or '.join(map(str, counts)) if isinstance(counts, tuple) else counts}"
                             f" arguments, not {len(args)}", name_token)
        self.expect("=", f"`= result` after {name}()")
        result = self.expression()
        errno = None
        if self.peek().kind == "WORD":
            token = self.take()
            if token.text not in ERRNOS:
                raise self.error("unknown errno name", token)
            errno = token.text
        if self.peek().kind == "(":
            self.note()
        return Syscall(name, tuple(args), result, errno, end_usecs)

    def note(self) -> None:
        """`(Operation now in progress)`: words for the reader, not checked."""
        self.take()
        while not self.accept(")"):
            if self.peek().kind in ("EOF", "(", "<", ">", "`"):
                raise self.error("expected `)` closing the note", self.peek())
            self.take()

    def expression(self) -> Expr:
        left = self.operand()
        while self.peek().kind == "|":
            self.take()
            right = self.operand()
            left = Expr("or", items=(left, right), text=f"{left.text}|{right.text}")
        return left

    def operand(self) -> Expr:
        token = self.take()
        if token.kind == "ELLIPSIS":
            return Expr("ellipsis", text="...")
        if token.kind in ("INTEGER", "HEX_INTEGER"):
            return Expr("int", token.integer, text=token.text)
        if token.kind == "WORD":
            if token.text not in CONSTANTS:
                raise self.error("unknown symbol", token)
            return Expr("int", CONSTANTS[token.text], text=token.text)
        if token.kind == "STRING":
            return Expr("string", token.inner, text=token.text)
        if token.kind == "[":
            items = [] if self.peek().kind == "]" else [self.expression()]
            while self.accept(","):
                items.append(self.expression())
            self.expect("]", "`,` or `]` in a list")
            return Expr("list", items=tuple(items), text="[" + ", ".join(i.text for i in items) + "]")
        if token.kind == "{":
            if self.peek().kind != "ONOFF":
                raise self.error("not supported by the harness: this struct argument "
                                 "(the harness knows {onoff=N, linger=N})", self.peek())
            self.take()
            self.expect("=", "`=` after onoff")
            onoff = self.integer("onoff", 32)
            self.expect(",", "`,` after onoff=N")
            self.expect("LINGER", "`linger`")
            self.expect("=", "`=` after linger")
            linger = self.integer("linger", 32)
            self.expect("}", "`}` closing the linger struct")
            return Expr("linger", items=(Expr("int", onoff), Expr("int", linger)),
                        text=f"{{onoff={onoff}, linger={linger}}}")
        if token.kind in UNSUPPORTED:
            raise self.unsupported(token)
        raise self.error("expected an expression (a number, a symbol, ..., [list], \"string\")", token)
