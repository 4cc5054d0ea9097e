"""`rn50tui serve`: the app in a browser through textual-serve, driven here as a browser would drive it
(the page over HTTP, then the websocket that starts one app process per tab)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import engine_env

pytestmark = pytest.mark.slow


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def open_tab(session, port: int, until: str) -> str:
    """What one browser tab's app draws, read from its websocket until `until` shows."""
    import aiohttp

    screen = ""
    async with session.ws_connect(f"http://localhost:{port}/ws?width=120&height=30") as ws:
        end = time.time() + 60
        while time.time() < end and until not in strip_ansi(screen):
            try:
                msg = await ws.receive(timeout=5)
            except asyncio.TimeoutError:
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                screen += msg.data
            elif msg.type == aiohttp.WSMsgType.BINARY:
                screen += msg.data.decode("utf-8", "replace")
            else:
                break
    return strip_ansi(screen)


async def browse(port: int, until: str, tabs: int = 1) -> tuple[str, list[str]]:
    """The page, then `tabs` tabs open at once, as a browser would."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        deadline = time.time() + 60
        while True:
            try:
                async with session.get(f"http://localhost:{port}/") as resp:
                    page = await resp.text()
                    break
            except aiohttp.ClientConnectionError:
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        screens = await asyncio.gather(*(open_tab(session, port, until) for _ in range(tabs)))
        return page, list(screens)


def serve(db: Path, cwd: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rn50tui", "--db", str(db), "serve", "--port", str(port)],
        cwd=cwd,
        env=engine_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return server, port


def stop(server: subprocess.Popen) -> None:
    children = psutil.Process(server.pid).children(recursive=True)
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


def test_serve_runs_the_app_in_a_browser_tab(tmp_path: Path):
    db = tmp_path / "jobs.db"
    server, port = serve(db, tmp_path)
    try:
        page, (screen,) = asyncio.run(browse(port, "no jobs yet"))
    finally:
        stop(server)
    assert "rn50tui" in page and "/ws" in page  # the page that opens the websocket
    assert "no jobs yet: press n for a new one" in screen  # the app drew its jobs screen
    assert db.exists()  # that app opened the store the server was given


def test_two_tabs_at_once_show_the_same_store(tmp_path: Path):
    from rn50tui.jobs.store import JobStore

    db = tmp_path / "jobs.db"
    store = JobStore(db)
    store.insert_job(
        name="shared-job",
        kind="train",
        argv=["--epochs", "1"],
        device="cpu",
        cards_requested=1,
        workspace=str(tmp_path / "runs" / "{id}"),
    )
    store.close()
    server, port = serve(db, tmp_path)
    try:
        _, screens = asyncio.run(browse(port, "shared-job", tabs=2))
    finally:
        stop(server)
    assert all("shared-job" in screen and "queued" in screen for screen in screens)
