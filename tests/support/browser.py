"""A real browser for tests: Debian's headless Chromium, driven over the DevTools protocol
with `websockets` (no browser download, no driver package).

`Browser.launch` starts it with a fresh profile and no network beyond this machine (every
other address goes to a proxy that is not there) and yields one page. The page records the
URL of every request and websocket it opens, evaluates JavaScript, clicks like a mouse and
takes screenshots. Waiting is always for a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from switchboard.processes.supervisor import die_with_parent
from tests.support.jobs import wait_for
from tests.support.live import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
]
COMMAND_TIMEOUT_S = 30.0


class BrowserError(Exception):
    """A DevTools command failed, or the page threw."""


class Page:
    """One tab, over its DevTools websocket."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.requested: list[str] = []  # every URL the page fetched or opened a socket to
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = orjson.loads(raw)
            if "id" in message:
                future = self._pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(BrowserError(message["error"]))
                else:
                    future.set_result(message.get("result", {}))
            elif message["method"] == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
            elif message["method"] == "Network.webSocketCreated":
                self.requested.append(message["params"]["url"])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        message = {"id": command_id, "method": method, "params": params}
        await self.socket.send(orjson.dumps(message).decode())  # DevTools takes text frames only
        return await asyncio.wait_for(future, COMMAND_TIMEOUT_S)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(result["exceptionDetails"])
        return result["result"].get("value")

    async def wait_until(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""

        async def check() -> Any:
            return await self.evaluate(expression)

        return await wait_for(check, timeout=timeout, interval=0.1)

    async def open(self, url: str) -> None:
        await self.send("Network.enable")  # before navigating: every request is seen
        await self.send("Page.enable")
        await self.send("Page.navigate", url=url)

    async def click(self, selector: str) -> None:
        """A left click in the middle of the first element matching `selector`, scrolled
        into view first (as a person would)."""
        box = await self.wait_until(
            f"(() => {{ const e = document.querySelector({orjson.dumps(selector).decode()});"
            " if (!e) return null; e.scrollIntoView({block: 'nearest', inline: 'nearest'});"
            " const r = e.getBoundingClientRect();"
            " return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class Browser:
    @staticmethod
    @contextlib.asynccontextmanager
    async def launch(profile: Path) -> AsyncIterator[Page]:
        """Headless Chromium with a fresh profile in `profile` (an empty folder)."""
        # Anything that is not loopback goes to a proxy on a port where nothing listens.
        nowhere = free_port()
        command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
        command += [f"--proxy-server=http://127.0.0.1:{nowhere}", "about:blank"]
        log = profile.parent / f"{profile.name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(os.getpid()),  # never outlives a killed test run
            )
        try:
            port_file = profile / "DevToolsActivePort"

            async def listening() -> str | None:
                if process.poll() is not None:
                    raise AssertionError(f"chromium exited: {log.read_text()[-2000:]}")
                lines = port_file.read_text().split() if port_file.exists() else []
                return lines[0] if len(lines) == 2 else None

            port = await wait_for(listening, timeout=30, interval=0.05)
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            target = next(t for t in targets if t["type"] == "page")
            async with connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
                page = Page(socket)
                try:
                    yield page
                finally:
                    await page.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
