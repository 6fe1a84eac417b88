"""`serve`: the drawing page and its JSON API, every model answering side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mnist_zoo.rundir import DEFAULT_RUNS_ROOT


def serve(models=(), *, runs_dir: str | os.PathLike | None = DEFAULT_RUNS_ROOT, host: str = "127.0.0.1",
          port: int = 8000, unsafe: bool = False, device: str = "auto", access_log: bool = False,
          ready: Callable[[str], None] | None = None) -> None:
    """Serves the page of `mnist-zoo serve` until Ctrl-C (or the notebook's interrupt button).

    Args:
        models: `Run`s, run directories or model files to serve (besides the runs in `runs_dir`).
        runs_dir: also serve every finished run in this folder (None: only `models`).
        host, port: where to listen; the default keeps the page on this machine (port 0: a free one).
        unsafe: let the models named in `models` run code (Lambda layers, SavedModel folders).
        device: 'auto', 'cpu' or 'gpu'.
        access_log: log a line per request.
        ready: called with the page's URL once it answers (default: print it).

    Raises:
        MissingDependencyError: `pip install "mnist-zoo[serve]"` is needed.
        ServeError: the address cannot be bound.
        ModelFileError: no model to serve, or a named one cannot be loaded.
    """
    from mnist_zoo.web.launch import open_page_server

    paths = [Path(os.fspath(model)) for model in ([models] if isinstance(models, (str, os.PathLike)) else models)]
    server = open_page_server(paths, runs_dir and Path(runs_dir), host, port, unsafe, device)
    announce = ready or (lambda url: print(f"Serving {len(server.zoo.models)} models at {url} (interrupt to stop)"))
    server.run(access_log=access_log, ready=lambda: announce(server.url))
