"""TRex's JSON-RPC 2.0 over ZMQ, as the TRex server speaks it (the stand-in's wire).

Follows trex-core src/rpc-server/: trex_rpc_req_resp_server.cpp (a REP socket;
a request zlib-compressed behind the header ">II" 0xABE85CEA + uncompressed length,
trex_rpc_zip.cpp, is answered compressed the same way; a batch is a JSON array,
answered by an array, except that a batch of one is answered by the single object),
trex_rpc_jsonrpc_v2_parser.cpp (the error codes and messages: "Method X not
registered", "Bad parameters for method" with a `specific_err`, ...) and
trex_rpc_cmd.cpp (api_h verified on every command but get_version, api_sync*,
ping; the port's owner handler verified on the owned commands).
The async side is src/publisher/trex_publisher.cpp in interactive mode: events are
queued per session with a sequence number, and "{}" is published on the PUB socket
as the trigger for a subscriber to fetch them with get_async_events.
"""
from __future__ import annotations

import json
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

ZIP_MAGIC = 0xABE85CEA
ZIP_HEADER = struct.Struct(">II")

# trex_rpc_jsonrpc_v2_parser.cpp
JSONRPC_V2_ERR_PARSE = -32700
JSONRPC_V2_ERR_INVALID_REQ = -32600
JSONRPC_V2_ERR_METHOD_NOT_FOUND = -32601
JSONRPC_V2_ERR_INVALID_PARAMS = -32602
JSONRPC_V2_ERR_INTERNAL_ERROR = -32603
JSONRPC_V2_ERR_EXECUTE_ERROR = -32000

# trex_rpc_server.cpp: requests larger than this are refused.
MAX_RPC_MSG_LEN = 5_000_000
POLL_MS = 20  # how often the serving loop looks at its timers when no request comes


class RpcError(Exception):
    """A command's failure, answered as TRex answers it: `code`, `message` and the
    `specific_err` the client shows."""

    def __init__(self, code: int, message: str, specific_err: str | None = None):
        super().__init__(specific_err or message)
        self.code = code
        self.message = message
        self.specific_err = specific_err


def parse_error(specific_err: str) -> RpcError:
    """TrexRpcCommand::generate_parse_err: bad or missing parameters."""
    return RpcError(JSONRPC_V2_ERR_INVALID_PARAMS, "Bad parameters for method", specific_err)


def execute_error(specific_err: str) -> RpcError:
    """TrexRpcCommand::generate_execute_err: the command cannot be carried out."""
    return RpcError(JSONRPC_V2_ERR_EXECUTE_ERROR, "Failed To Execute Method", specific_err)


@dataclass
class Command:
    """One registered method (TrexRpcCommand): its handler takes the params and
    returns the result."""

    handler: Callable[[dict], object]
    needs_api: bool = True
    owned: bool = False


def unzip(message: bytes) -> bytes | None:
    """The request inside a compressed message, None when it is not one."""
    if len(message) < ZIP_HEADER.size:
        return None
    magic, length = ZIP_HEADER.unpack_from(message)
    if magic != ZIP_MAGIC:
        return None
    try:
        inner = zlib.decompress(message[ZIP_HEADER.size:])
    except zlib.error:
        return None
    return inner if len(inner) == length else None


def zip_message(text: bytes) -> bytes:
    return ZIP_HEADER.pack(ZIP_MAGIC, len(text)) + zlib.compress(text)


STALE_SESSION = 10.0  # seconds: a session that has not fetched its events for this long gets no more


@dataclass
class Session:
    """A client session's queued events (TrexPublisherCtx)."""

    seq: int = 0
    events: list = field(default_factory=list)
    last_query: float = 0.0


class Publisher:
    """The async channel: per-session event queues, and `send` publishing on the PUB socket."""

    def __init__(self, send: Callable[[bytes], object], clock: Callable[[], float] = time.monotonic):
        self._send = send
        self._clock = clock
        self._sessions: dict[int, Session] = {}
        self._lock = threading.Lock()

    def add_session(self, session_id: int) -> None:
        with self._lock:
            self._sessions.setdefault(session_id, Session(last_query=self._clock()))

    def take_events(self, session_id: int) -> list:
        """get_async_events: the session's queued events, the session created if new."""
        with self._lock:
            session = self._sessions.setdefault(session_id, Session())
            events, session.events = session.events, []
            session.last_query = self._clock()
            return events

    def publish_event(self, event_type: int, data: dict) -> None:
        """TrexPublisher::publish_event: queued for every session but one that stopped
        fetching (a client gone without a word), then the trigger."""
        now = self._clock()
        with self._lock:
            for session in self._sessions.values():
                if session.events and now - session.last_query >= STALE_SESSION:
                    continue
                if not session.events:
                    session.last_query = now
                session.events.append({"name": "trex-event", "type": event_type, "data": data, "seq": session.seq})
                session.seq += 1
        self.trigger()

    def trigger(self) -> None:
        """What TRex publishes in interactive mode: "{}", fetch your events."""
        self._send(b"{}")


class ZmqServer:
    """The REP (sync) and PUB (async) sockets."""

    def __init__(self, bind: str, sync_port: int, async_port: int):
        self.context = zmq.Context()
        self._rep = self.context.socket(zmq.REP)
        self._rep.bind(f"tcp://{bind}:{sync_port}")
        self._pub = self.context.socket(zmq.PUB)
        self._pub.bind(f"tcp://{bind}:{async_port}")
        self._pub_lock = threading.Lock()  # events are published from the traffic thread too

    def publish(self, message: bytes) -> None:
        with self._pub_lock:
            self._pub.send(message)

    def serve(self, answer: Callable[[bytes], bytes], tick: Callable[[], None],
              running: Callable[[], bool]) -> None:
        """Answer requests until `running()` is false; `tick()` between them."""
        poller = zmq.Poller()
        poller.register(self._rep, zmq.POLLIN)
        while running():
            if poller.poll(POLL_MS):
                self._rep.send(answer(self._rep.recv()))
            tick()

    def close(self) -> None:
        self._rep.close(linger=0)
        self._pub.close(linger=0)
        self.context.term()


class Dispatcher:
    """The command table (TrexRpcCommandsTable) and the JSON-RPC around it."""

    def __init__(self, api_handler: str):
        self.api_handler = api_handler
        self.commands: dict[str, Command] = {}
        self.owner_handler: Callable[[int], str | None] = lambda port_id: None

    def register(self, name: str, handler: Callable[[dict], object], needs_api: bool = True,
                 owned: bool = False) -> None:
        self.commands[name] = Command(handler, needs_api, owned)

    def answer(self, request: bytes) -> bytes:
        """process_request(): the reply to one message, compressed if it was."""
        unzipped = unzip(request)
        if unzipped is None:
            return self._answer_raw(request)
        return zip_message(self._answer_raw(unzipped))

    def _answer_raw(self, request: bytes) -> bytes:
        if len(request) > MAX_RPC_MSG_LEN:
            reply = self._error(None, JSONRPC_V2_ERR_INTERNAL_ERROR,
                                f"Request is too large ({len(request)} bytes). Consider splitting to smaller chunks.")
            return json.dumps(reply).encode()
        try:
            parsed = json.loads(request)
        except (UnicodeDecodeError, ValueError):
            return json.dumps(self._error(None, JSONRPC_V2_ERR_PARSE, "Bad JSON Format")).encode()
        replies = [self._run(single) for single in (parsed if isinstance(parsed, list) else [parsed])]
        return json.dumps(replies[0] if len(replies) == 1 else replies).encode()

    @staticmethod
    def _error(msg_id, code: int, message: str, specific_err: str | None = None) -> dict:
        error = {"code": code, "message": message}
        if specific_err is not None:
            error["specific_err"] = specific_err
        return {"jsonrpc": "2.0", "id": msg_id, "error": error}

    def _run(self, request) -> dict:
        """parse_single_request() and JsonRpcMethod::_execute()."""
        msg_id = request.get("id") if isinstance(request, dict) else None
        if msg_id is None:
            return self._error(None, JSONRPC_V2_ERR_INVALID_REQ, "Missing 'id' field")
        if request.get("jsonrpc") != "2.0":
            return self._error(msg_id, JSONRPC_V2_ERR_INVALID_REQ, "Invalid JSONRPC Version")
        method = request.get("method")
        if not method:
            return self._error(msg_id, JSONRPC_V2_ERR_INVALID_REQ, "Missing Method Name")
        command = self.commands.get(method)
        if command is None:
            return self._error(msg_id, JSONRPC_V2_ERR_METHOD_NOT_FOUND, f"Method {method} not registered")
        params = request.get("params", {})
        try:
            if not isinstance(params, dict):
                raise execute_error("JSON-RPC2 params should be object in TRex case ")
            if command.needs_api and params.get("api_h") != self.api_handler:
                if "api_h" not in params:
                    raise parse_error("field 'api_h' is missing")
                raise execute_error("API verification failed - API handler provided mismatch for class: 'STL'")
            if command.owned:
                self._verify_ownership(params)
            result = command.handler(params)
        except RpcError as error:
            return self._error(msg_id, error.code, error.message, error.specific_err)
        except Exception as error:  # noqa: BLE001 -- the server keeps serving; the client is told what broke
            traceback.print_exc(file=sys.stderr)
            return self._error(msg_id, JSONRPC_V2_ERR_INTERNAL_ERROR, "Internal Server Error",
                               f"{method}: {type(error).__name__}: {error}")
        return {"jsonrpc": "2.0", "id": msg_id, "result": result}

    def _verify_ownership(self, params: dict) -> None:
        """TrexRpcCommand::verify_ownership."""
        handler = params.get("handler")
        if not isinstance(handler, str):
            raise parse_error("field 'handler' is missing")
        owner = self.owner_handler(port_id(params))
        if owner is None:
            raise execute_error("please acquire the port before modifying port state")
        if owner != handler:
            raise execute_error("port is not owned by you or your current executing session")


# TrexRpcCommand's typed parameter readers (check_field_type_common's messages).
def _field(params: dict, name: str, types: tuple, type_name: str, default=...):
    if name not in params or params[name] is None:
        if default is not ...:
            return default
        raise parse_error(f"field '{name}' is missing")
    value = params[name]
    if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
        raise parse_error(f"'{name}' is '{type(value).__name__}', expecting '{type_name}'")
    return value


def param_int(params: dict, name: str, default=..., low: int = 0, high: int | None = None) -> int:
    value = _field(params, name, (int,), "int", default)
    if value < low or (high is not None and value > high):
        raise parse_error(f"'{name}' has value {value} out of range [{low}, {high}]")
    return value


def param_float(params: dict, name: str, default=...) -> float:
    return float(_field(params, name, (int, float), "double", default))


def param_bool(params: dict, name: str, default=...) -> bool:
    return _field(params, name, (bool,), "bool", default)


def param_str(params: dict, name: str, default=...) -> str:
    return _field(params, name, (str,), "string", default)


def param_list(params: dict, name: str, default=...) -> list:
    return _field(params, name, (list,), "array", default)


def param_dict(params: dict, name: str, default=...) -> dict:
    return _field(params, name, (dict,), "object", default)


def param_choice(params: dict, name: str, choices: tuple[str, ...]) -> str:
    value = param_str(params, name)
    if value not in choices:
        raise parse_error(f"'{name}' value '{value}' is not one of: {', '.join(choices)}")
    return value


def port_id(params: dict) -> int:
    return param_int(params, "port_id", high=0xFF)
