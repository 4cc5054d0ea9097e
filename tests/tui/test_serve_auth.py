"""The token check of `rn50tui serve` (rn50tui/serve.py) against a real aiohttp app, without the server."""

from __future__ import annotations

import asyncio

import pytest

from rn50tui.serve import cookie_name, is_loopback, make_middleware, url


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]"])
def test_loopback_hosts(host: str):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gpu-node-7", "example.org"])
def test_hosts_beyond_loopback(host: str):
    assert not is_loopback(host)


def test_url_carries_the_token_and_a_reachable_name():
    assert url("127.0.0.1", 8123, "abc") == "http://127.0.0.1:8123/?token=abc"
    assert "0.0.0.0" not in url("0.0.0.0", 8123, "abc")


async def _statuses() -> dict[str, object]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="the app")

    app = web.Application(middlewares=[make_middleware("s3cret", 8123)])
    app.add_routes([web.get("/", page), web.get("/ws", page), web.get("/static/app.js", page)])
    async with TestClient(TestServer(app)) as client:
        out: dict[str, object] = {}
        for name, path, headers in [
            ("bare", "/", {}), ("wrong", "/?token=nope", {}), ("ws_bare", "/ws", {}),
            ("static", "/static/app.js", {}), ("good", "/?token=s3cret", {}),
        ]:  # fmt: skip
            resp = await client.get(path, headers=headers)
            out[name] = resp.status
            if name == "good":
                out["cookie"] = resp.cookies.get(cookie_name(8123))
        client.session.cookie_jar.clear()
        resp = await client.get(
            "/ws", cookies={cookie_name(8123): "s3cret"}, headers={"Origin": "http://evil.example"}
        )
        out["ws_other_origin"] = resp.status
        resp = await client.get("/ws", cookies={cookie_name(8123): "s3cret"})
        out["ws_cookie"] = resp.status
        return out


def test_requests_without_the_token_are_refused():
    out = asyncio.run(_statuses())
    assert out["bare"] == out["wrong"] == out["ws_bare"] == 403
    assert out["static"] == 200  # the page's assets hold nothing of the user's
    assert out["good"] == 200 and out["cookie"] is not None and out["cookie"].value == "s3cret"
    assert out["cookie"]["httponly"] and out["cookie"]["samesite"] == "Strict"
    assert out["ws_cookie"] == 200  # the websocket the page opens carries the cookie
    assert out["ws_other_origin"] == 403
