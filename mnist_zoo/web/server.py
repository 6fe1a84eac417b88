"""Runs the application under uvicorn on a socket bound beforehand, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import socket

from mnist_zoo.errors import MnistZooError


MAX_CONNECTIONS = 32
"""Connections (and requests) served at once; more are answered 503 by uvicorn. Each may hold a
request body of up to 8 MiB while it waits."""
HEADER_SECONDS = 10.0
"""A connection must send a request's headers within this (from its opening, or from the previous
answer), or it is closed: a client trickling a byte at a time would otherwise keep one of the
MAX_CONNECTIONS forever (uvicorn itself waits for headers without end)."""


class ServeError(MnistZooError):
    """The server cannot start: the address is taken, not local, or not valid."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 takes a free one.

    Binding here, before uvicorn starts, lets the caller print the real URL (and port) first and
    turns a taken port into one line.

    Raises:
        ServeError: the address cannot be bound (in use, not this machine's, not resolvable).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ServeError(f"--host {host}: not an address of this machine ({error.strerror})") from None
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        hint = "; choose another with --port (0 takes a free one)" if error.errno == 98 else ""
        raise ServeError(f"cannot listen on {host}:{port} ({error.strerror}){hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def bound_address(sock: socket.socket) -> str:
    """The address a socket is bound to, as numbers ("127.0.0.1", "::1", "0.0.0.0"), whatever name was given."""
    return sock.getsockname()[0]


def allowed_hosts(sock: socket.socket) -> list[str] | None:
    """The Host names a server on `sock` answers: its own loopback names, or None (any) off the loopback.

    The bound address itself is one of them, so `--host ::1` or `--host 127.0.0.2` answers
    requests addressed to it, and `--host 127.1` (a name for 127.0.0.1) is checked like 127.0.0.1.
    """
    address = bound_address(sock)
    if not ipaddress.ip_address(address).is_loopback:
        return None
    return sorted({address, "127.0.0.1", "localhost", "::1"})


def url_of(sock: socket.socket) -> str:
    """The address to open in a browser: the bound address and port, 127.0.0.1 (or ::1) when bound to every interface."""
    address, port = sock.getsockname()[:2]
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(app, sock: socket.socket, access_log: bool = False, ready=None) -> None:
    """Serves `app` on `sock` until Ctrl-C or SIGTERM, then returns after a graceful shutdown.

    Args:
        app: the ASGI application.
        sock: a listening socket (`bind`).
        access_log: log a line per request.
        ready: called once the stop signals are handled, just before serving (to print the URL):
            a Ctrl-C from then on stops the server the same clean way.
    """
    import uvicorn

    config = uvicorn_config(app, access_log=access_log)
    server = uvicorn.Server(config)

    def stop(signal_number, frame):
        # A flag, not KeyboardInterrupt: a signal landing while Python runs a callback (an import
        # lock's, during start-up) would have the exception printed as "ignored" and lost, and the
        # server would serve on. uvicorn reads the flag once it runs, and installs its own
        # handlers, which end in this one again after the graceful shutdown.
        server.should_exit = True

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        if ready is not None:
            ready()
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl-C during the shutdown
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()


def uvicorn_config(app, access_log: bool = False, header_seconds: float = HEADER_SECONDS,
                   max_connections: int = MAX_CONNECTIONS):
    """uvicorn's settings for the page's server: its limits, and a protocol that enforces `header_seconds`."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="on",
                          timeout_graceful_shutdown=5, limit_concurrency=max_connections,
                          http=header_deadline_protocol(header_seconds))


def header_deadline_protocol(seconds: float):
    """uvicorn's HTTP protocol class, closing a connection that has not sent a request's headers within `seconds`.

    The clock starts when the connection opens and again after each answer; a request whose
    headers have arrived is bounded by the body deadline (`guards.BodyLimit`) instead.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # uvicorn without its [standard] extra
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class HeaderDeadlineProtocol(base):
        _header_timer = None
        _waiting_after = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._start_header_clock()

        def data_received(self, data):
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._waiting_after:
                self._stop_header_clock()  # a new request's headers arrived

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._start_header_clock()  # waiting for the next request on this connection

        def connection_lost(self, exc):
            self._stop_header_clock()
            super().connection_lost(exc)

        def _start_header_clock(self):
            self._stop_header_clock()
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._headers_too_late)

        def _stop_header_clock(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_late(self):
            self._header_timer = None
            if self.cycle is self._waiting_after and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


SERVE_EXTRA = "pip install 'mnist-zoo[serve]'"


def require_framework() -> None:
    """Checks that the web framework is installed, before any model is loaded.

    Raises:
        MissingDependencyError: starlette, uvicorn or python-multipart is missing; names the pip command.
    """
    import importlib.util

    from mnist_zoo.errors import MissingDependencyError

    missing = [name for name, module in (("starlette", "starlette"), ("uvicorn", "uvicorn"),
                                         ("python-multipart", "python_multipart"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingDependencyError(f"mnist-zoo serve needs {', '.join(missing)}: {SERVE_EXTRA}")
