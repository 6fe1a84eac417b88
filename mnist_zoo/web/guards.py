"""ASGI middleware that keeps the page's server to its own origin, its limits and its deadlines."""

from __future__ import annotations

import asyncio
import json

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Request bodies above this are refused with 413: ample for a phone photo, small for memory."""
BODY_SECONDS = 60.0
"""A request's body must arrive within this (408 otherwise): 8 MiB over a slow phone connection
takes seconds, while a client trickling a byte at a time would otherwise hold a connection forever."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ALLOWED_FETCH_SITES = ("same-origin", "none")
"""`Sec-Fetch-Site` values of a request the page itself (or a user typing an address) makes."""
SECURITY_HEADERS = [
    # The page's own script and style only: no inline script, nothing from elsewhere; pictures the
    # page makes itself (a chosen photo's blob: URL) are allowed.
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; "
                                 b"form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


async def send_error(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answers a request with `{"error": message}` and `status`, before (or instead of) the application."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> str | None:
    """A request header's value as text (latin-1, as HTTP defines it), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def host_name(host: str) -> str:
    """The name in a Host header, lower case, without its port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1] or [::1]:8000, and nothing else after the bracket
        name, _, rest = host[1:].partition("]")
        return name if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else host


class HostCheck:
    """400 for a request whose Host header is not one of `allowed` (names without ports).

    A server on the loopback answers only its own names: a web page elsewhere whose name an
    attacker points at 127.0.0.1 (DNS rebinding) sends its own name as Host, and is refused.
    """

    def __init__(self, app, allowed: list[str]):
        self.app = app
        self.allowed = {name.lower().strip("[]") for name in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = header(scope, b"host")
            if host is None or host_name(host) not in self.allowed:
                await send_error(send, 400, f"the Host header {host!r} is not a name of this server; open "
                                            f"it at {' or '.join(sorted(self.allowed))}")
                return
        await self.app(scope, receive, send)


class SameOrigin:
    """403 for a request that changes or costs something (not GET/HEAD/OPTIONS) sent from another site.

    Any web page can POST to 127.0.0.1 (a `no-cors` fetch cannot read the answer, but the
    server does the work). Browsers name the page that sent a request in `Origin` and say how it
    relates to the target in `Sec-Fetch-Site`; a client outside a browser (curl, a script) sends
    neither and is let through.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            site, origin, host = (header(scope, name) for name in (b"sec-fetch-site", b"origin", b"host"))
            own_origin = f"{scope.get('scheme', 'http')}://{(host or '').lower()}"
            if site is not None and site.lower() not in ALLOWED_FETCH_SITES:
                await send_error(send, 403, f"a request from another site (Sec-Fetch-Site: {site}) is refused; "
                                            "use the page this server serves, or a client outside a browser")
                return
            if origin is not None and origin.lower() != own_origin:
                await send_error(send, 403, f"a request from the origin {origin!r} is refused; only the page "
                                            f"at {own_origin} may send one")
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over `max_bytes`, declared (Content-Length) or streamed; 408 if it comes too slowly."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, seconds: float = BODY_SECONDS):
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        from starlette.exceptions import HTTPException

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over the limit of {self.max_bytes:,} bytes; send a smaller picture"
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_error(send, 413, too_large)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # after the body, the application only waits for a disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Raised inside the endpoint's read, so the app's handler answers it.
                raise HTTPException(408, f"the request body did not arrive within {self.seconds:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response: the page runs only its own code and is never framed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(key, value) for key, value in SECURITY_HEADERS if key not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
