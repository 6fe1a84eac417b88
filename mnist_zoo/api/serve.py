"""`serve`: the drawing page and its JSON API, every model answering side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mnist_zoo.rundir import DEFAULT_RUNS_ROOT


def serve(models=(), *, runs_dir: str | os.PathLike | None = DEFAULT_RUNS_ROOT, host: str = "127.0.0.1",
          port: int = 8000, unsafe: bool = False, device: str = "auto", access_log: bool = False,
          ready: Callable[[str], None] | None = None, report: Callable[[str], None] | None = None) -> None:
    """Serves the page of `mnist-zoo serve` until Ctrl-C (or the notebook's interrupt button).

    Args:
        models: `Run`s, run directories or model files to serve (besides the runs in `runs_dir`).
        runs_dir: also serve every finished run in this folder (None: only `models`).
        host, port: where to listen; the default keeps the page on this machine (port 0: a free one).
        unsafe: let the models named in `models` run code (Lambda layers, SavedModel folders).
        device: 'auto', 'cpu' or 'gpu'.
        access_log: log a line per request.
        ready: called with the page's URL once it answers (default: print it).
        report: receives the warnings (a model left out, a page reachable from the network);
            default: stderr.

    Raises:
        MissingDependencyError: `pip install "mnist-zoo[serve]"` is needed.
        ServeError: the address cannot be bound.
        ModelFileError: no model to serve, or a named one cannot be loaded.
    """
    import sys

    from mnist_zoo.api.common import check_choice
    from mnist_zoo.web.launch import open_page_server

    check_choice("device", device)
    warn = report or (lambda message: print(message, file=sys.stderr, flush=True))
    paths = [Path(os.fspath(model)) for model in ([models] if isinstance(models, (str, os.PathLike)) else models)]
    server = open_page_server(paths, runs_dir and Path(runs_dir), host, port, unsafe, device)
    for reason in server.skipped:
        warn(f"skipped {reason}")
    if server.exposed:
        warn(f"Warning: listening on {host}: the page and the API are reachable from the network, by anyone who "
             "can reach this machine; host='127.0.0.1' keeps them on this machine.")
    announce = ready or (lambda url: print(f"Serving {len(server.zoo.models)} models at {url} (interrupt to stop)"))
    server.run(access_log=access_log, ready=lambda: announce(server.url))
