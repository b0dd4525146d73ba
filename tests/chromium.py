"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
commands on fd 3, answers and events on fd 4, each a JSON text ending in a NUL byte), with
the standard library only: open a page, wait for what it renders, run JavaScript in it,
take screenshots, and list every request it made. The network is off: every request
that would leave the machine goes to a proxy that is not there."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 1400, 1000
NO_NETWORK = ["--proxy-server=socks5://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
              "--disable-background-networking", "--disable-component-update", "--no-first-run",
              "--disable-sync", "--disable-default-apps"]


class ChromiumError(Exception):
    """Chromium answered a command with an error, or did not answer in time."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser with one page (a tab) in it; close() ends it."""

    def __init__(self, executable: str, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.requests: list[str] = []  # every URL the page asked for, in order
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def browser_pipes() -> None:  # in the child: the pipes on the fds --remote-debugging-pipe reads
            os.dup2(to_browser_read, 3)
            os.dup2(from_browser_write, 4)

        self._process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", f"--window-size={WIDTH},{HEIGHT}", *NO_NETWORK],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=browser_pipes, pass_fds=(3, 4), start_new_session=True)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self._command("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.command(f"{domain}.enable")
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def command(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """`method` on the page; its result."""
        return self._command(method, params, self._session)

    def open(self, url: str) -> None:
        self.command("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of the JavaScript `expression` in the page (awaited if a promise)."""
        answer = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise ChromiumError(f"{expression}: {answer['exceptionDetails'].get('exception', answer)}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """The first truthy value of `expression`, polled until the timeout (a DOM node
        comes back as {}: ask for `!!node`)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self._drain(0.1)
        raise ChromiumError(f"the page never showed {what} ({expression}) within {self.timeout} s")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.command("Page.captureScreenshot", {"format": "png"})["data"]))

    def close(self) -> None:
        """Closes the browser as a user would (its helper processes go with it), then
        ends whatever of its process group is left, and removes its profile."""
        try:
            self._command("Browser.close")
            self._process.wait(timeout=10)
        except (ChromiumError, OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the group this browser leads: its own helpers only
            except ProcessLookupError:
                pass
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._profile.cleanup()

    def _command(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            for answer in self._read(deadline, method):
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise ChromiumError(f"{method}: {answer['error']}")
                    return answer["result"]

    def _wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(index)
            self._read(deadline, method)

    def _drain(self, seconds: float) -> None:
        """Reads what Chromium sends for `seconds` (events: requests made meanwhile)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return
            self._read(time.monotonic() + self.timeout, "the rest of a message")

    def _read(self, deadline: float, waiting_for: str) -> list[dict[str, Any]]:
        """The messages of the next read, events kept aside; a ChromiumError past `deadline`."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise ChromiumError(f"no answer from Chromium to {waiting_for} within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ChromiumError(f"Chromium exited (status {self._process.poll()}) while waiting for {waiting_for}")
            self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        messages = [json.loads(text) for text in complete]
        for message in messages:
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if "method" in message:
                self._events.append(message)
        return messages
