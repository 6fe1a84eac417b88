"""A local sweep worker process: `python -m mnist_zoo.sweeps.worker SWEEP_DIR INDEX [DATA_DIR]`.

`sweep --workers N` starts N of these; the study's URL comes in `$MNIST_ZOO_STORAGE`, never on
the command line, which `ps` shows every user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Runs trials until the study's budget is spent; the exit status follows the CLI's (2, 130, 143)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mnist_zoo.errors import MnistZooError, TrainingInterrupted
    from mnist_zoo.sweeps.stage import open_existing
    from mnist_zoo.sweeps.storage import STORAGE_ENV
    from mnist_zoo.sweeps.study import run_worker

    sweep_dir, index, *data_dir = argv
    report = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        setup = open_existing(Path(sweep_dir), os.environ[STORAGE_ENV])  # the sweep `sweep --workers` set up
        run_worker(setup.spec, setup.base, setup.sweep_dir, setup.storage, setup.study_name, int(index), report,
                   data_dir[0] if data_dir else None)
    except MnistZooError as error:
        report(f"Error: {error}")
        return 2
    except TrainingInterrupted as error:
        return 128 + error.signal_number
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
