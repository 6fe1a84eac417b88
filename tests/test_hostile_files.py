"""Hostile model files, arrays and configs: refused in one line before they can read elsewhere, block or crash."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_zoo.errors import ConfigError, DataError, ModelFileError
from tests.skips import import_or_skip

# A refusal is instant; without it some of these files block or read forever: fail fast instead.
READS_FOREVER_WITHOUT_THE_CHECK = pytest.mark.timeout(60)


# ----------------------------------------------------------------------------- .onnx: external data anywhere


def _onnx_model(weights_tensor_node, *, nested: bool):
    """A softmax-regression .onnx model whose weights come from `weights_tensor_node` (a Constant), at the top
    level or inside an If's branch."""
    from onnx import TensorProto, helper

    if nested:
        def branch(name):
            return helper.make_graph([weights_tensor_node], name, [],
                                     [helper.make_tensor_value_info("W", TensorProto.FLOAT, [784, 10])])

        condition = helper.make_node("Constant", [], ["condition"],
                                     value=helper.make_tensor("condition_value", TensorProto.BOOL, [], [True]))
        weights = [condition, helper.make_node("If", ["condition"], ["W"], then_branch=branch("then"),
                                               else_branch=branch("else"))]
    else:
        weights = [weights_tensor_node]
    graph = helper.make_graph(
        [*weights, helper.make_node("MatMul", ["image", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "in-an-If-branch"])
def test_an_onnx_constant_with_external_data_is_refused_before_onnxruntime(tmp_path, monkeypatch, nested):
    onnx = import_or_skip("onnx")
    onnxruntime = import_or_skip("onnxruntime")
    from onnx import external_data_helper, numpy_helper

    from mnist_zoo.inference.runtimes import open_classifier

    weights = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32)
    tensor = numpy_helper.from_array(weights, "W")
    external_data_helper.set_external_data(tensor, location="w.bin")
    tensor.ClearField("raw_data")
    constant = onnx.helper.make_node("Constant", [], ["W"], value=tensor)
    path = tmp_path / "model.onnx"
    path.write_bytes(_onnx_model(constant, nested=nested).SerializeToString())
    # onnxruntime, given the model's bytes, reads w.bin from the working directory: here it exists.
    (tmp_path / "w.bin").write_bytes(weights.tobytes())
    monkeypatch.chdir(tmp_path)

    def no_session(*args, **kwargs):
        pytest.fail("onnxruntime was given a model with external data")

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_session)
    with pytest.raises(ModelFileError, match=f"^{path}: the model keeps its weights in external files; only "
                                             r"self-contained \.onnx files are accepted$"):
        open_classifier(path)


def test_every_tensor_of_an_onnx_model_is_looked_at(tmp_path):
    """Sparse initializers and sparse or list attributes, in a function's body too."""
    onnx = import_or_skip("onnx")
    from onnx import external_data_helper, helper, numpy_helper

    from mnist_zoo.inference.model_limits import _onnx_tensors

    def external(name):
        tensor = numpy_helper.from_array(np.zeros(3, np.float32), name)
        external_data_helper.set_external_data(tensor, location=f"{name}.bin")
        return tensor

    sparse = helper.make_sparse_tensor(external("sparse_values"), numpy_helper.from_array(np.arange(3), "i"), [5])
    node = helper.make_node("Custom", [], ["y"], domain="custom", tensors=[external("listed")],
                            sparse_value=sparse)
    function = helper.make_function("custom", "f", [], ["y"], [node], [helper.make_opsetid("", 17)])
    graph = helper.make_graph([], "g", [], [])
    graph.sparse_initializer.append(helper.make_sparse_tensor(external("sparse_initializer"),
                                                              numpy_helper.from_array(np.arange(3), "j"), [5]))
    model = helper.make_model(graph, functions=[function])
    names = {tensor.name for tensor in _onnx_tensors(model) if tensor.data_location == onnx.TensorProto.EXTERNAL}
    assert names == {"sparse_values", "listed", "sparse_initializer"}


# ----------------------------------------------------------------------------- .keras: weights from elsewhere


def _keras_file(path: Path) -> Path:
    import keras

    keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)]).save(path)
    return path


def _rewrite_weights(source: Path, target: Path, change) -> Path:
    """A copy of a .keras archive whose model.weights.h5 was changed by `change(h5py.File)`."""
    h5py = import_or_skip("h5py")

    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = target.with_suffix(".h5")
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as file:
        change(file)
    members["model.weights.h5"] = weights.read_bytes()
    weights.unlink()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def _other_weights(folder: Path) -> tuple[Path, np.ndarray]:
    """Another local HDF5 file holding a (784, 10) kernel, and that kernel."""
    h5py = import_or_skip("h5py")

    kernel = np.full((784, 10), 7.0, np.float32)
    other = folder / "elsewhere.h5"
    with h5py.File(other, "w") as file:
        file["kernel"] = kernel
    return other, kernel


KERNEL = "layers/dense/vars/0"


def _soft_link(file, folder):
    import h5py

    file["kept"] = file[KERNEL][()]
    del file[KERNEL]
    file[KERNEL] = h5py.SoftLink("/kept")


def _external_link(file, folder):
    import h5py

    del file[KERNEL]
    file[KERNEL] = h5py.ExternalLink(str(_other_weights(folder)[0]), "kernel")


def _external_storage(file, folder):
    raw = folder / "kernel.bin"
    raw.write_bytes(np.full((784, 10), 7.0, np.float32).tobytes())
    del file[KERNEL]
    file.create_dataset(KERNEL, shape=(784, 10), dtype="<f4", external=[(str(raw), 0, 784 * 10 * 4)])


def _virtual_dataset(file, folder):
    import h5py

    layout = h5py.VirtualLayout(shape=(784, 10), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(_other_weights(folder)[0]), "kernel", shape=(784, 10))
    del file[KERNEL]
    file.create_virtual_dataset(KERNEL, layout)


@pytest.mark.parametrize("change, refused", [
    (_soft_link, "a soft link 'layers/dense/vars/0'"),
    (_external_link, "an external link 'layers/dense/vars/0'"),
    (_external_storage, "a dataset 'layers/dense/vars/0' stored in external files"),
    (_virtual_dataset, "a virtual dataset 'layers/dense/vars/0' (a view of data in other files)"),
], ids=["soft-link", "external-link", "external-storage", "virtual-dataset"])
def test_keras_weights_that_would_be_read_from_elsewhere_are_refused(tmp_path, change, refused):
    # Keras 3.15 refuses these itself, in a multi-line ValueError; pyproject's floor (keras>=3.3) does not.
    from mnist_zoo.inference.modelfile import load_classifier

    original = _keras_file(tmp_path / "original.keras")
    hostile = _rewrite_weights(original, tmp_path / "hostile.keras", lambda file: change(file, tmp_path))
    with pytest.raises(ModelFileError) as refusal:
        load_classifier(hostile)
    assert str(refusal.value) == (
        f"{hostile}: model.weights.h5 holds {refused}, which would make Keras read weights from outside the "
        "archive; a .keras file keeps them inside (save the model again with model.save)")
    assert load_classifier(original).count_params() == 7850  # the control: the archive as Keras writes it


# ----------------------------------------------------------------------------- SavedModel folders: programs


@pytest.fixture
def saved_model_folder(tmp_path, monkeypatch):
    """A folder that looks like a SavedModel, and a tf.saved_model.load that records its calls instead of loading."""
    import tensorflow as tf

    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    calls = []

    def load(path, *args, **kwargs):
        calls.append(path)
        raise RuntimeError("not a real SavedModel")

    monkeypatch.setattr(tf.saved_model, "load", load)
    return folder, calls


def test_a_saved_model_is_refused_without_unsafe_before_tensorflow_loads_it(saved_model_folder):
    from mnist_zoo.inference.runtimes import SavedModelClassifier, open_classifier

    folder, calls = saved_model_folder
    message = (f"^{folder}: a SavedModel folder is a TensorFlow program \\(its graph can read and write files when "
               "run\\); load it only if you trust it, with --unsafe$")
    for opening in (lambda: open_classifier(folder), lambda: SavedModelClassifier(folder)):
        with pytest.raises(ModelFileError, match=message):
            opening()
    assert calls == []
    with pytest.raises(ModelFileError, match="not a readable SavedModel"):
        open_classifier(folder, unsafe=True)
    assert calls == [str(folder)]  # with --unsafe it is loaded


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_the_commands_refuse_a_saved_model_without_unsafe(saved_model_folder, tmp_path, command):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli

    folder, calls = saved_model_folder
    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), np.uint8))
    arguments = [command, str(folder)] + ([str(digit)] if command == "predict" else [])
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2 and "with --unsafe" in result.output and calls == []
    result = CliRunner().invoke(cli, [*arguments, "--unsafe"])
    assert result.exit_code == 2 and "not a readable SavedModel" in result.output and calls == [str(folder)]


def test_a_saved_model_folder_is_measured_through_its_symlinks(tmp_path):
    from mnist_zoo.inference.model_limits import check_file_size

    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(bytes(100))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "variables.data-00000-of-00001").write_bytes(bytes(5000))
    (folder / "variables").symlink_to(outside, target_is_directory=True)
    (outside / "back").symlink_to(folder, target_is_directory=True)  # a cycle: walked once
    with pytest.raises(ModelFileError, match=f"^{folder}: it holds 5,100 bytes, more than the 4,096 accepted"):
        check_file_size(folder, max_bytes=4096)
    check_file_size(folder, max_bytes=5100)


@READS_FOREVER_WITHOUT_THE_CHECK
def test_a_saved_model_holding_a_device_is_refused(tmp_path):
    from mnist_zoo.inference.model_limits import check_file_size

    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(bytes(100))
    (folder / "variables" / "variables.data-00000-of-00001").symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="variables.data-00000-of-00001 is a character device, not a regular "
                                             "file; a SavedModel folder holds only files and folders"):
        check_file_size(folder)


# ----------------------------------------------------------------------------- one read: checked is what runs


def _replace_before(module, name: str, path: Path, replacement: bytes, monkeypatch):
    """Makes `module.name` (a runtime's loader) first replace `path` with `replacement`: an attacker's
    swap after the checks, just before the runtime would open the path again."""
    original = getattr(module, name)

    def swapped(*args, **kwargs):
        path.write_bytes(replacement)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, swapped)


def test_a_keras_file_swapped_after_its_check_is_not_loaded(tmp_path, monkeypatch):
    import keras

    from mnist_zoo.inference.modelfile import load_classifier

    path = _keras_file(tmp_path / "model.keras")
    kernel = load_classifier(path).layers[0].kernel.numpy()
    swapped = _rewrite_weights(path, tmp_path / "swapped.keras", lambda file: _external_link(file, tmp_path))
    _replace_before(keras.saving, "load_model", path, swapped.read_bytes(), monkeypatch)
    model = load_classifier(path)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernel)  # the checked bytes, not elsewhere.h5


def test_a_keras_file_is_loaded_from_a_private_copy_that_is_then_removed(tmp_path, monkeypatch):
    import keras

    from mnist_zoo.inference.modelfile import load_classifier

    import tempfile

    path = _keras_file(tmp_path / "model.keras")
    (tmp_path / "private").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "private"))
    loaded = []
    original = keras.saving.load_model

    def load(copy, *args, **kwargs):
        loaded.append((Path(copy), os.stat(copy).st_mode & 0o777))
        return original(copy, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", load)
    load_classifier(path)
    [(copy, mode)] = loaded
    assert copy.parent == tmp_path / "private" and copy.suffix == ".keras" and mode == 0o600
    assert not copy.exists()


def test_a_tflite_file_swapped_after_it_was_read_is_not_run(tmp_path, monkeypatch):
    import_or_skip("ai_edge_litert")
    import tensorflow as tf
    from ai_edge_litert import interpreter

    from mnist_zoo.inference.runtimes import open_classifier

    # Constant weights, no variables: every TensorFlow and LiteRT of the floors converts and runs it.
    weights = tf.constant(np.zeros((784, 10), np.float32))
    function = tf.function(lambda image: tf.nn.softmax(tf.matmul(image, weights)),
                           input_signature=[tf.TensorSpec([None, 784], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    path = tmp_path / "model.tflite"
    path.write_bytes(converter.convert())
    _replace_before(interpreter, "Interpreter", path, bytes(range(256)) * 40, monkeypatch)
    probabilities = open_classifier(path).probabilities(np.zeros((2, 28, 28), np.uint8))
    assert probabilities.shape == (2, 10)


def test_an_onnx_file_swapped_after_it_was_read_is_not_run(tmp_path, monkeypatch):
    import_or_skip("onnx")
    onnxruntime = import_or_skip("onnxruntime")
    from onnx import helper, numpy_helper

    from mnist_zoo.inference.runtimes import open_classifier

    weights = numpy_helper.from_array(np.zeros((784, 10), np.float32), "W")
    path = tmp_path / "model.onnx"
    path.write_bytes(_onnx_model(helper.make_node("Constant", [], ["W"], value=weights), nested=False)
                     .SerializeToString())
    _replace_before(onnxruntime, "InferenceSession", path, bytes(range(256)) * 40, monkeypatch)
    assert open_classifier(path).probabilities(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10)


# ----------------------------------------------------------------------------- FIFOs, devices, growing files


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@READS_FOREVER_WITHOUT_THE_CHECK
@pytest.mark.parametrize("name, target", [
    ("model.onnx", "fifo"), ("model.onnx", "/dev/zero"), ("model.tflite", "/dev/zero"),
    ("model.keras", "/dev/zero"), ("model.keras", "fifo"),
])
def test_a_model_file_that_is_a_fifo_or_a_device_is_refused(tmp_path, name, target):
    from mnist_zoo.inference.runtimes import open_classifier

    path = tmp_path / name
    if target == "fifo":
        _fifo(path)
        kind = "a pipe (FIFO)"
    else:
        path.symlink_to(target)
        kind = "a character device"
    with pytest.raises(ModelFileError, match=f"^{path}: {kind.replace('(', '[(]').replace(')', '[)]')}, not a "
                                             "regular file; give the path of a file on disk$"):
        open_classifier(path)


@READS_FOREVER_WITHOUT_THE_CHECK
@pytest.mark.parametrize("target", ["fifo", "/dev/zero"])
def test_a_config_that_is_a_fifo_or_a_device_is_refused(tmp_path, target):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli
    from mnist_zoo.config.loading import load_config

    path = tmp_path / "config.yaml"
    if target == "fifo":
        _fifo(path)
    else:
        path.symlink_to(target)
    with pytest.raises(ConfigError, match="not a regular file; give the path of a file on disk$"):
        load_config(path)
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2 and "not a regular file" in result.output


@READS_FOREVER_WITHOUT_THE_CHECK
def test_an_npy_input_that_is_a_fifo_is_refused(tmp_path):
    from mnist_zoo.data.arrays import read_npy

    path = _fifo(tmp_path / "digits.npy")
    with pytest.raises(DataError, match=r"a pipe \(FIFO\), not a regular file"):
        read_npy(path)


def test_a_file_that_grows_while_read_is_read_no_further_than_the_limit(tmp_path, monkeypatch):
    from mnist_zoo import files

    path = tmp_path / "growing.yaml"
    path.write_bytes(b"x" * 3000)
    real_fstat = os.fstat

    def stale_fstat(descriptor):  # the size when the file was opened, before it grew to 3,000 bytes
        return os.stat_result((*real_fstat(descriptor)[:6], 10, *real_fstat(descriptor)[7:]))

    monkeypatch.setattr(files.os, "fstat", stale_fstat)
    sizes = []

    def too_large(size):
        sizes.append(size)
        return ConfigError("too large")

    with pytest.raises(ConfigError, match="too large"):
        files.read_regular_file(path, 1000, ConfigError, too_large)
    assert sizes == [1001]  # it stopped one byte past the limit
    assert files.read_regular_file(path, 5000, ConfigError, too_large) == b"x" * 3000


# ----------------------------------------------------------------------------- .npy headers


@pytest.mark.parametrize("shape", ["(-2, -14)", "(-1, 28)", "(2, -1, -14)"])
def test_an_npy_header_with_a_negative_size_is_a_data_error(tmp_path, shape):
    from mnist_zoo.data.arrays import read_npy, read_npz

    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (127 - 10 - len(header)) + b"\n"
    content = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(28)
    (tmp_path / "digits.npy").write_bytes(content)
    message = f"header declares the shape {shape}, but sizes cannot be negative".replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(DataError, match=f"^{tmp_path / 'digits.npy'}: {message}"):
        read_npy(tmp_path / "digits.npy")
    with zipfile.ZipFile(tmp_path / "digits.npz", "w") as archive:
        archive.writestr("x_train.npy", content)
    with pytest.raises(DataError, match=message):
        read_npz(tmp_path / "digits.npz", ("x_train",))


# ----------------------------------------------------------------------------- what messages call a file


def test_h5_errors_name_the_archive_not_a_file_object(tmp_path):
    from mnist_zoo.inference.modelfile import load_classifier

    original = _keras_file(tmp_path / "original.keras")
    with zipfile.ZipFile(original) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + bytes(500)
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(ModelFileError) as refusal:
        load_classifier(path)
    assert str(refusal.value).startswith(f"{path}: the weights file model.weights.h5 is not readable HDF5")
    assert " object at 0x" not in str(refusal.value)
