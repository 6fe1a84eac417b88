"""Fixtures: a pinned device and precision, where the real data files are, shared trained runs; the skip policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite runs on the CPU on every machine, its subprocesses included: on a GPU machine `auto`
# would switch to the GPU and mixed_float16 and the bit-exact tests would change meaning.
# MNIST_ZOO_TEST_GPU=1 keeps the GPUs visible (for the GPU checks of a GPU machine).
if os.environ.get("MNIST_ZOO_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

from mnist_zoo.data.catalog import IDX_FILES  # noqa: E402
from mnist_zoo.data.download import cache_dir  # noqa: E402
from tests import skips  # noqa: E402
from tests.helpers import train_tiny, tree_signature, write_mnist_folder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI") == "true"

# Where a developer has the data files, in this order: the folder they name, the course's shared
# folder beside the checkout, and the product's own download cache (read here, before the fixtures
# below point the cache at a temporary folder), so that one `mnist-zoo train` enables the data tests.
DATA_ROOTS = [Path(os.environ["MNIST_ZOO_TEST_DATA"])] if os.environ.get("MNIST_ZOO_TEST_DATA") else []
DATA_ROOTS += [REPO_ROOT.parent / "shared" / "data", cache_dir("mnist").parent]


def find_data_root(dataset: str) -> Path | None:
    """The first of DATA_ROOTS whose `dataset/` folder holds the four IDX files (gzipped or not)."""
    for root in DATA_ROOTS:
        folder = root / dataset
        if all((folder / stem).is_file() or (folder / f"{stem}.gz").is_file() for stem in IDX_FILES.values()):
            return root
    return None


def _data_root(dataset: str) -> Path:
    root = find_data_root(dataset)
    if root is None:
        skips.skip_for(dataset, f"no {dataset}/ with the four IDX files under " + ", ".join(map(str, DATA_ROOTS)))
    return root


# ----------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test reads the user's data folder or cache, or downloads anything."""
    monkeypatch.delenv("MNIST_ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("MNIST_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MNIST_ZOO_MIRRORS", "http://127.0.0.1:9/{dataset}/")  # port 9: refused


@pytest.fixture(autouse=True)
def _float32_keras_policy():
    """Every test starts in float32 and must leave Keras's global dtype policy as it found it.

    A test (or product code) that leaks another policy would make every model built after it
    in this process compute in that precision: the leak fails the test that caused it.
    """
    import keras

    keras.config.set_dtype_policy("float32")
    yield
    leaked = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("float32")
    if leaked != "float32":
        pytest.fail(f"the test left Keras's global dtype policy at {leaked!r}")


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def mnist_data() -> Path:
    """A folder holding mnist/ with the original IDX files."""
    return _data_root("mnist")


@pytest.fixture(scope="session")
def fashion_data() -> Path:
    """A folder holding fashion_mnist/ with the original IDX files."""
    return _data_root("fashion_mnist")


@pytest.fixture(scope="session")
def real_mnist(mnist_data):
    from mnist_zoo.data.datasets import load_dataset

    return load_dataset("mnist", str(mnist_data))


@pytest.fixture(scope="session")
def small_mnist_dir(real_mnist, tmp_path_factory) -> Path:
    """2,000 real training and 500 real test images as IDX files: enough to learn something fast."""
    folder = tmp_path_factory.mktemp("small_mnist")
    return write_mnist_folder(
        folder,
        real_mnist.train_images[:2000], real_mnist.train_labels[:2000],
        real_mnist.test_images[:500], real_mnist.test_labels[:500],
    )


@pytest.fixture(scope="session")
def tiny_runs(small_mnist_dir, tmp_path_factory) -> dict[str, Path]:
    """One finished one-epoch run of each registry model's tiny variant, trained once per session.

    Read them in place; copy them (`helpers.copy_runs`) before anything writes into them: the
    session fails if a test changed one, as a later test would read what it left.
    """
    from mnist_zoo.models.registry import MODELS

    folder = tmp_path_factory.mktemp("tiny-runs")
    runs = {model: train_tiny(folder / f"run-{model}", small_mnist_dir, model) for model in MODELS}
    before = tree_signature(folder)
    yield runs
    assert tree_signature(folder) == before, "a test wrote into the shared tiny runs; copy them first"


# A small CNN with dropout and a one-cycle schedule, 4 epochs of a few seconds on the small data:
# what the signal, kill -9, disk-full and concurrency tests interrupt and compare against.
SMALL_CNN_EPOCHS = 4


@pytest.fixture(scope="session")
def small_cnn_config(small_mnist_dir, tmp_path_factory) -> Path:
    import yaml

    config = {
        "model": {"type": "cnn", "conv_layers": [{"filters": 8, "kernel_size": 5}], "hidden_units": [32],
                  "dropout_rate": 0.3},
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
        "train": {"epochs": SMALL_CNN_EPOCHS, "batch_size": 32, "verbose": 2,
                  "schedule": {"name": "one_cycle", "warmup_fraction": 0.1}},
    }
    path = tmp_path_factory.mktemp("small-cnn") / "small-cnn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def small_cnn_reference(small_cnn_config, tmp_path_factory) -> Path:
    """`small_cnn_config` trained without a break as a real `mnist-zoo train` process: the reference run."""
    import subprocess
    import sys

    run_dir = tmp_path_factory.mktemp("small-cnn-reference") / "run"
    result = subprocess.run([sys.executable, "-m", "mnist_zoo", "train", "--config", str(small_cnn_config),
                             "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    before = tree_signature(run_dir)
    yield run_dir
    assert tree_signature(run_dir) == before, "a test wrote into the shared reference run; copy it first"


# ----------------------------------------------------------------------------- the skip policy


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true", default=False,
                     help="run the tests in reverse order (--random-order shuffles them), to show that none "
                          "depends on another's files or order")


# A test that reads the real data files trains or evaluates on them (directly, or through a
# fixture that does: pytest lists every fixture a test depends on): slow. Tests that start
# processes or train without them carry the mark themselves.
REAL_DATA_FIXTURES = {"mnist_data", "fashion_data"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if config.getoption("--reverse"):
        items.reverse()


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_unexpected_skip(report) -> None:
    """In CI, turns a skip that tests/skips.py does not allow into a failure that says how to fix it."""
    if not (CI and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = _skip_reason(report)
    if skips.allowed_in_ci(reason):
        return
    need = skips.need_of(reason)
    how = skips.NEEDS[need].how if need else "name its need with tests/skips.py skip_for"
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI: {reason}\nCI (CI=true) runs every test: {how}; a skip CI may "
                       "take needs an entry with its reason in tests/skips.py")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_unexpected_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_unexpected_skip(report)
    return report


def pytest_terminal_summary(terminalreporter):
    """One line per missing need: how many tests it skipped and how to run them."""
    counts: dict[str | None, list[int]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if hasattr(report, "wasxfail"):
            continue
        tally = counts.setdefault(skips.need_of(_skip_reason(report)), [0, 0])
        tally[1 if isinstance(report, pytest.CollectReport) else 0] += 1
    for need, (tests, modules) in counts.items():
        parts = [f"{tests} test{'s' * (tests != 1)}" if tests else "",
                 f"{modules} module{'s' * (modules != 1)}" if modules else ""]
        counted = " and ".join(part for part in parts if part)
        if need is None:
            terminalreporter.write_line(f"{counted} skipped for reasons of their own (-rs lists them)")
        else:
            terminalreporter.write_line(f"{counted} skipped: they need {skips.NEEDS[need].what}; "
                                        f"{skips.NEEDS[need].how}")
