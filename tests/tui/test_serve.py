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
    """What one browser tab's app draws, read from its websocket until `until` shows (the page's cookie
    carries the token, as in a browser)."""
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


async def browse(url: str, until: str, tabs: int = 1) -> tuple[str, list[str]]:
    """The page at `url` (the one `serve` printed), then `tabs` tabs open at once, as a browser would."""
    import aiohttp

    port = int(url.split(":")[2].split("/")[0])
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        deadline = time.time() + 60
        while True:
            try:
                async with session.get(url) as resp:
                    page = await resp.text()
                    break
            except aiohttp.ClientConnectionError:
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        screens = await asyncio.gather(*(open_tab(session, port, until) for _ in range(tabs)))
        return page, list(screens)


def serve(db: Path, cwd: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """Start `rn50tui serve`; return it and the URL it printed (with its token)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rn50tui", "--db", str(db), "serve", "--port", str(port), *flags],
        cwd=cwd,
        env=engine_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed = []
    for line in server.stdout:  # until the URL shows (or the server dies: then the assert says why)
        printed.append(line)
        found = re.search(r"open (http://\S+)", line)
        if found:
            server.printed = "".join(printed)
            return server, found.group(1).replace(found.group(1).split("/")[2].split(":")[0], "localhost", 1)
    server.wait()
    raise AssertionError(f"serve printed no URL: {''.join(printed)}")


def stop(server: subprocess.Popen) -> None:
    children = psutil.Process(server.pid).children(recursive=True)
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


def test_serve_runs_the_app_in_a_browser_tab(tmp_path: Path):
    db = tmp_path / "jobs.db"
    server, url = serve(db, tmp_path)
    try:
        page, (screen,) = asyncio.run(browse(url, "no jobs yet"))
    finally:
        stop(server)
    assert "rn50tui" in page and "/ws" in page  # the page that opens the websocket
    assert "no jobs yet: press n for a new one" in screen  # the app drew its jobs screen
    assert db.exists()  # that app opened the store the server was given


def test_two_tabs_at_once_show_the_same_store(tmp_path: Path):
    from rn50tui.jobs.core.store import JobStore

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
    server, url = serve(db, tmp_path)
    try:
        _, screens = asyncio.run(browse(url, "shared-job", tabs=2))
    finally:
        stop(server)
    assert all("shared-job" in screen and "queued" in screen for screen in screens)


async def refused(url: str) -> list[int]:
    """The statuses of the page and of the websocket asked for without the token (or with a wrong one)."""
    import aiohttp

    base = url.split("/?")[0]
    port = int(base.rsplit(":", 1)[1])
    deadline = time.time() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:  # it prints its URL just before listening
        assert time.time() < deadline, "the server never listened"
        await asyncio.sleep(0.2)
    statuses = []
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/?token=wrong", "/download/x"):
            async with session.get(base + path) as resp:
                statuses.append(resp.status)
        try:
            async with session.ws_connect(base + "/ws?width=80&height=24"):
                statuses.append(101)
        except aiohttp.WSServerHandshakeError as exc:
            statuses.append(exc.status)
    return statuses


def test_a_remote_server_needs_allow_remote_then_refuses_requests_without_its_token(tmp_path: Path):
    db = tmp_path / "jobs.db"
    out = subprocess.run([sys.executable, "-m", "rn50tui", "--db", str(db), "serve", "--host", "0.0.0.0"],
                         cwd=tmp_path, env=engine_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1 and "--allow-remote" in out.stderr and not db.exists()

    server, url = serve(db, tmp_path, "--host", "0.0.0.0", "--allow-remote")
    try:
        statuses = asyncio.run(refused(url))
        page, (screen,) = asyncio.run(browse(url, "no jobs yet"))
    finally:
        stop(server)
    assert "can submit, cancel and delete jobs" in server.printed and "token=" in url
    assert statuses == [403, 403, 403, 403]  # page, wrong token, download, websocket: all refused
    assert "no jobs yet: press n for a new one" in screen  # with the printed URL, the app opens
