"""Assembles the page's server: the models, the bound socket, the application and the Host names it answers."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mnist_zoo.rundir import DEFAULT_RUNS_ROOT


@dataclass
class PageServer:
    """A server ready to run: its models are loaded and its socket is bound, nothing is served yet.

    Attributes:
        zoo: the models served (`zoo.Zoo`).
        sock: the listening socket.
        app: the Starlette application.
        skipped: why each model found was not served (one line each).
    """

    zoo: object
    sock: socket.socket
    app: object
    skipped: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        from mnist_zoo.web.server import url_of

        return url_of(self.sock)

    @property
    def exposed(self) -> bool:
        """True when the address is not a loopback one: anyone who can reach this machine reaches the page."""
        from mnist_zoo.web.server import allowed_hosts

        return allowed_hosts(self.sock) is None

    def described_models(self) -> list[dict]:
        """Each model's facts, as the page and `GET /api/models` show them."""
        return [model.describe() for model in self.zoo.models.values()]

    def run(self, access_log: bool = False, ready: Callable[[], None] | None = None) -> None:
        """Serves until Ctrl-C or SIGTERM, then shuts down gracefully; `ready` is called just before serving."""
        from mnist_zoo.web.server import run

        run(self.app, self.sock, access_log=access_log, ready=ready)


def open_page_server(paths: list[Path], runs_dir: Path | None = DEFAULT_RUNS_ROOT, host: str = "127.0.0.1",
                     port: int = 8000, unsafe: bool = False, device: str = "auto") -> PageServer:
    """Loads the models and binds the socket of `mnist-zoo serve`.

    Args:
        paths: run directories and model files named by the user.
        runs_dir: also serve every finished run in it (None: only `paths`).
        host, port: where to listen (port 0: a free one).
        unsafe: let the models in `paths` (never those found in `runs_dir`) run code.
        device: 'auto', 'cpu' or 'gpu'.

    Raises:
        MissingDependencyError: the serve extra is not installed.
        ServeError: the address cannot be bound.
        ModelFileError, RunDirError: no model to serve, or a named one cannot be loaded.
    """
    from mnist_zoo.runtime.device import select_device
    from mnist_zoo.web.server import allowed_hosts, bind, require_framework

    require_framework()  # before any model is loaded
    from mnist_zoo.web.app import create_app
    from mnist_zoo.web.discovery import open_zoo

    select_device(device)
    zoo = open_zoo(list(paths), runs_dir, unsafe=unsafe)
    try:
        sock = bind(host, port)
    except BaseException:
        zoo.close()
        raise
    # From the address bound, not the name given: `--host 127.1` is the loopback too.
    app = create_app(zoo, allowed_hosts=allowed_hosts(sock))
    return PageServer(zoo, sock, app, list(zoo.skipped))
