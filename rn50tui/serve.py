"""`rn50tui serve`: the app in a web browser (textual-serve), behind a per-start token.

textual-serve has no authentication, and the app it serves can submit, cancel and delete jobs. So every
start makes a random token, printed in the URL as Jupyter does; the page and the websocket are refused
without it (the page sets an HttpOnly, SameSite=Strict cookie so the websocket it opens carries it), and a
websocket from another origin is refused. Listening beyond loopback needs --allow-remote.
No textual import here until `serve()` runs: the CLI stays fast.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import sys
from collections.abc import Awaitable
from typing import Any, Callable
from urllib.parse import urlsplit

TOKEN_PARAM = "token"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

REMOTE_WARNING = (
    "rn50tui: listening on {host}: anyone who can reach port {port} and has the token below can submit, "
    "cancel and delete jobs and read their logs, as {user}. The traffic is plain HTTP (not encrypted): "
    "use it on a trusted network or behind an SSH tunnel / HTTPS proxy."
)


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_name(port: int) -> str:
    """Cookies are shared by every port of a host: one name per server."""
    return f"rn50tui_token_{port}"


def token_ok(request: Any, token: str, port: int) -> bool:
    """The request carries the token, in the query or in the cookie the page set."""
    given = request.query.get(TOKEN_PARAM) or request.cookies.get(cookie_name(port)) or ""
    return hmac.compare_digest(given.encode(), token.encode())


def same_origin(request: Any) -> bool:
    """A websocket opened by our own page (a browser always sends Origin; other pages must not drive it)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def make_middleware(token: str, port: int) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware: static assets are public, everything else needs the token."""
    from aiohttp import web

    @web.middleware
    async def require_token(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        if request.path.startswith("/static/"):
            return await handler(request)
        if not token_ok(request, token, port):
            raise web.HTTPForbidden(
                text="rn50tui: this server needs its token: open the URL that `rn50tui serve` printed "
                "(http://HOST:PORT/?token=...)\n"
            )
        if request.path == "/ws" and not same_origin(request):
            raise web.HTTPForbidden(text="rn50tui: websocket from another origin refused\n")
        response = await handler(request)
        if request.query.get(TOKEN_PARAM) and request.path == "/":
            response.set_cookie(cookie_name(port), token, httponly=True, samesite="Strict", path="/")
        return response

    return require_token


def serve(command: str, host: str, port: int, token: str, out: Any = sys.stdout) -> None:
    """Run textual-serve with the token middleware until Ctrl+C."""
    from textual_serve.server import Server

    public = url(host, port, token).split("/?")[0]  # the page's websocket URL: a name browsers can reach

    class TokenServer(Server):
        async def _make_app(self) -> Any:
            app = await super()._make_app()
            app.middlewares.append(make_middleware(token, port))
            return app

        async def on_startup(self, app: Any) -> None:
            print(f"rn50tui: serving the app; open {url(host, port, token)}", file=out, flush=True)
            print("rn50tui: press Ctrl+C to stop", file=out, flush=True)

    TokenServer(command, host=host, port=port, title="rn50tui", public_url=public).serve()


def url(host: str, port: int, token: str) -> str:
    """What to open: the wildcard addresses are shown as this machine's name."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/?{TOKEN_PARAM}={token}"
