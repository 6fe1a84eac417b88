"""Runs the application under uvicorn on a socket bound beforehand, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import socket

from mnist_zoo.errors import MnistZooError


class ServeError(MnistZooError):
    """The server cannot start: the address is taken, not local, or not valid."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def url_of(sock: socket.socket, host: str) -> str:
    """The address to open in a browser: the bound port, on 127.0.0.1 when bound to every interface."""
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
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

    config = uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=5)
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
