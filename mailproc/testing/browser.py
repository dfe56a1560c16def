"""Render an HTML file in a real, throwaway headless Chromium: a PNG screenshot and every
console error, for the tests of report mails' HTML parts.

Debian's `chromium-headless-shell` (installed by scripts/test) is started with a fresh
profile directory, no sandbox (tests may run as root), no GPU, nothing done in the
background (no component updates, sync or first-run work) and a host resolver that
resolves no name at all, so any external resource a page asks for fails instead of
being fetched. It is driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors
3 and 4) — no port to find, no websocket client, standard library only. The pipe is
what makes the findings precise: `console.error` and `console.assert` calls, uncaught
exceptions, and the browser's own error log entries (a resource that failed to load,
a blocked request) each arrive as an event with its level, which Chromium's stderr
log does not give.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/headless_shell",
              "/usr/bin/chromium-headless-shell")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--remote-debugging-pipe")
WIDTH, HEIGHT = 800, 2000
TIMEOUT = 30.0  # seconds for the whole render
SETTLE = 0.3  # seconds to wait after the load event for late console messages


class BrowserError(RuntimeError):
    """Chromium could not be started or did not answer in time."""


@dataclass
class Rendered:
    png: Path
    width: int  # of the screenshot, in pixels
    height: int
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    messages: list[str] = field(default_factory=list)  # every console message, any level


def binary() -> str:
    """The headless shell's executable, or BrowserError saying how to install it."""
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium-headless-shell")
    if found:
        return found
    raise BrowserError("chromium-headless-shell is not installed (Debian package chromium-headless-shell; "
                       "scripts/test installs it)")


def available() -> bool:
    try:
        binary()
    except BrowserError:
        return False
    return True


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


class _Pipe:
    """One DevTools session over the pipe: send commands, read replies and events."""

    def __init__(self, to_browser: int, from_browser: int, deadline: float):
        self.out, self.inp, self.deadline = to_browser, from_browser, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self.inp], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.inp, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe (it exited)")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read_message())

    def drain(self, seconds: float) -> None:
        """Read the events that arrive within `seconds`."""
        until = min(time.monotonic() + seconds, self.deadline)
        while True:
            left = until - time.monotonic()
            if left <= 0 and b"\0" not in self.buffer:
                return
            if b"\0" not in self.buffer:
                ready, _, _ = select.select([self.inp], [], [], max(left, 0))
                if not ready:
                    return
                chunk = os.read(self.inp, 1 << 16)
                if not chunk:
                    return
                self.buffer += chunk
                continue
            self.events.append(self._read_message())


def _console_text(params: dict) -> str:
    parts = []
    for arg in params.get("args", []):
        parts.append(str(arg.get("value", arg.get("description", arg.get("type", "")))))
    return " ".join(parts)


def _findings(events: list[dict]) -> tuple[list[str], list[str]]:
    errors, messages = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = f"console.{params.get('type')}: {_console_text(params)}"
            messages.append(text)
            if params.get("type") in ("error", "assert"):
                errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text", "")
            errors.append(f"uncaught exception: {description}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = f"{entry.get('source')}: {entry.get('text')}" + (f" ({entry['url']})" if entry.get("url") else "")
            messages.append(text)
            if entry.get("level") == "error":
                errors.append(text)
    return errors, messages


def render(html_file: Path, png: Path, *, width: int = WIDTH, height: int = HEIGHT,
           timeout: float = TIMEOUT) -> Rendered:
    """Load `html_file` in a fresh headless Chromium, screenshot the page (`width` wide, the
    page's full height, at least `height`) to `png`, and collect its console errors."""
    html_file, png = Path(html_file).resolve(), Path(png)
    profile = Path(tempfile.mkdtemp(prefix="mailproc-chromium-"))
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # The child's ends, moved above 10 so that putting them at 3 and 4 cannot overwrite one with the other.
    child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w))
    os.close(to_browser_r)
    os.close(from_browser_w)
    args = [binary(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]

    def fds() -> None:  # the child reads commands on fd 3 and writes replies to fd 4 (dup2 makes them inheritable)
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    # close_fds=False keeps 3 and 4; every other descriptor of ours is close-on-exec (PEP 446).
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=fds, close_fds=False)
    os.close(child_in)
    os.close(child_out)
    pipe = _Pipe(to_browser_w, from_browser_r, time.monotonic() + timeout)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        pipe.events.clear()
        pipe.call("Page.navigate", {"url": html_file.as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired")
        pipe.drain(SETTLE)
        metrics = pipe.call("Page.getLayoutMetrics", session=session)
        content = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        full = max(height, int(content.get("height", height)))
        shot = pipe.call("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True,
                          "clip": {"x": 0, "y": 0, "width": width, "height": full, "scale": 1}}, session=session)
        data = base64.b64decode(shot["data"])
        png.write_bytes(data)
        errors, messages = _findings(pipe.events)
        shot_width, shot_height = png_size(data)
        try:
            pipe.call("Browser.close")
        except BrowserError:
            pass  # it may exit before it answers
        return Rendered(png, shot_width, shot_height, errors, messages)
    finally:
        os.close(to_browser_w)
        os.close(from_browser_r)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def render_html(html: str, directory: Path, name: str = "page") -> Rendered:
    """`render` for HTML text: written to `directory`/NAME.html, screenshot NAME.png beside it."""
    directory = Path(directory)
    page = directory / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    return render(page, directory / f"{name}.png")
