"""Resource bombs: small inputs that would expand to gigabytes or hours get a one-line error within seconds."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ConfigError
from tests.helpers import python_memory_peak
from tests.skips import import_or_skip


def billion_laughs(levels: int = 9) -> str:
    """A 300-byte YAML document whose aliases stand for 9**9 (387 million) strings."""
    document = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[:levels - 1]:
        document += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        previous = name
    return document


@pytest.mark.parametrize("text, message", [
    (billion_laughs(), "expands to more than 100,000 values (YAML aliases)"),
    ("model: &a [*a]\n", "refers to a value that contains it"),
    ("model: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64 levels deep"),
    ("model: " + "{a: " * 100 + "1" + "}" * 100 + "\n", "nested more than 64 levels deep"),
], ids=["billion-laughs", "self-alias", "deep-lists", "deep-mappings"])
def test_yaml_bombs_in_a_config_are_refused_at_once(tmp_path, text, message):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with python_memory_peak() as peak:
        result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert peak.megabytes < 50  # refused before the aliases expand (a billion strings would be gigabytes)
    from mnist_zoo.config.loading import load_config

    with pytest.raises(ConfigError, match="bomb.yaml"):
        load_config(path)


def test_a_huge_config_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:
        handle.write("description: '")
        handle.write("x" * 2_000_000)
        handle.write("'\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(path)])
    assert result.exit_code == 2 and "a config file is at most 1,000,000" in result.output


def test_a_yaml_bomb_in_a_set_value_or_a_sweep_file_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["config", "show", "--model", "mlp", "--set",
                                      "model.hidden_units=" + billion_laughs().replace("\n", " ")])
    assert result.exit_code == 2
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(billion_laughs())
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--sweep-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "expands to more than" in result.output and not (tmp_path / "out").exists()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels in a few dozen bytes (its pixel data is never there)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


# 8,000 x 8,000 is refused by our limit; 20,000 x 20,000 and more already by Pillow's, when it opens the file.
@pytest.mark.parametrize("width, height", [(8_000, 8_000), (20_000, 20_000), (100_000, 100_000)])
def test_a_picture_declaring_huge_dimensions_is_refused_from_its_header(tmp_path, width, height):
    from mnist_zoo.errors import DataError
    from mnist_zoo.inference.pictures import MAX_PIXELS, prepare_picture

    picture = tmp_path / "bomb.png"
    picture.write_bytes(png_header_only(width, height))
    with pytest.raises(DataError) as raised:
        prepare_picture(picture)
    assert f"more than the {MAX_PIXELS:,} pixels accepted" in str(raised.value)
    assert str(raised.value).count("\n") == 0 and "scale the picture down" in str(raised.value)


def npy_header_only(shape: tuple, dtype: str = "<f8") -> bytes:
    """A .npy file that declares `shape` in its header and holds 100 bytes of data."""
    import io

    from numpy.lib import format as npy_format

    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 100


@pytest.mark.parametrize("shape, message", [
    ((10 ** 9, 28, 28), "more than the 1,073,741,824 accepted"),  # 5.7 TiB: numpy's MemoryError before
    ((1000, 28, 28), "but the file holds 100 bytes; it is truncated or corrupt"),
])
def test_an_npy_declaring_more_than_it_holds_is_refused_from_its_header(tmp_path, linear_keras_file, shape,
                                                                       message):
    array_file = tmp_path / "digits.npy"
    array_file.write_bytes(npy_header_only(shape))
    result = CliRunner().invoke(cli, ["predict", str(linear_keras_file), str(array_file)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.strip().count("\n") == 0


def test_an_npz_member_declaring_gigabytes_is_refused(tmp_path):
    import zipfile

    archive_path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x_train.npy", npy_header_only((3_000_000, 28, 28), "|u1"))
    result = CliRunner().invoke(cli, ["train", "--model", "linear", "--data-dir", str(archive_path),
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "x_train: declares a (3000000, 28, 28) uint8 array" in result.output
    assert not (tmp_path / "run").exists()


def test_an_npz_member_is_inflated_no_further_than_the_limit(tmp_path):
    import numpy as np

    from mnist_zoo.data.arrays import read_npz
    from mnist_zoo.errors import DataError

    np.savez_compressed(tmp_path / "zeros.npz", x_train=np.zeros((3000, 28, 28), np.uint8))
    with pytest.raises(DataError, match="more than the 1,000,000 accepted"):
        read_npz(tmp_path / "zeros.npz", ("x_train",), max_bytes=1_000_000)
    assert read_npz(tmp_path / "zeros.npz", ("x_train",))["x_train"].shape == (3000, 28, 28)


def test_idx_headers_that_claim_too_much_are_refused_without_inflating(tmp_path):
    import gzip

    import numpy as np
    from tests.helpers import idx_bytes, random_mnist_folder

    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.errors import DataError

    folder = random_mnist_folder(tmp_path / "d")
    images = folder / "train-images-idx3-ubyte.gz"
    # 1.5 GB declared in 16 bytes.
    images.write_bytes(gzip.compress((0x0803).to_bytes(4, "big") + b"".join(
        size.to_bytes(4, "big") for size in (2_000_000, 28, 28))))
    with pytest.raises(DataError, match=r"header declares \(2000000, 28, 28\) \(1,568,000,000 bytes\), more than"):
        load_dataset("mnist", str(folder))
    # A true header followed by 200 MB of zeros (200 kB compressed): read one byte past the claim, no further.
    content = idx_bytes(np.zeros((64, 28, 28), np.uint8))
    with gzip.open(images, "wb", compresslevel=1) as handle:
        handle.write(content)
        for _ in range(200):
            handle.write(bytes(1_000_000))
    with python_memory_peak() as peak:
        with pytest.raises(DataError, match="but the file holds more; the file is truncated or corrupt"):
            load_dataset("mnist", str(folder))
    assert peak.megabytes < 20  # the 200 MB behind the claim were never inflated into memory
    # An uncompressed file is checked against its size before its data are read.
    plain = random_mnist_folder(tmp_path / "plain", compress=False)
    with open(plain / "train-labels-idx1-ubyte", "r+b") as handle:
        handle.seek(4)
        handle.write((10 ** 8).to_bytes(4, "big"))
    with pytest.raises(DataError, match=r"header says \(100000000,\) \(100,000,008 bytes\) but the file holds 72 bytes"):
        load_dataset("mnist", str(plain))


@pytest.fixture(scope="module")
def linear_keras_file(tmp_path_factory):
    """A real, tiny .keras classifier (784-10) to make bombs from."""
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path_factory.mktemp("bombs") / "linear.keras"
    model.save(path)
    return path


def rewrite_archive(source, target, replace: dict) -> None:
    """Copies a zip archive, with the members named in `replace` written by the callables given."""
    import zipfile

    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in original.infolist():
            if member.filename in replace:
                with copy.open(member.filename, "w", force_zip64=True) as handle:
                    replace[member.filename](handle)
            else:
                copy.writestr(member, original.read(member.filename))


def huge_weights(handle) -> None:
    """1.2 GB of float32 declared by a chunked, compressed dataset that was never written: 10 kB on disk."""
    import io

    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:
        weights.create_dataset("layers/dense/vars/0", shape=(300_000_000,), dtype="float32",
                               chunks=(1_000_000,), compression="gzip")
        weights.create_dataset("layers/dense/vars/1", data=[0.0] * 10, dtype="float32")
    handle.write(buffer.getvalue())


def zeros(handle) -> None:
    """1.1 GB of zeros, about 1 MB deflated."""
    block = bytes(1 << 20)
    for _ in range(1100):
        handle.write(block)


@pytest.mark.parametrize("weights, command, largest, message", [
    (huge_weights, "summary", 100_000, "its weights declare 1,200,000,040 bytes, more than the"),
    (zeros, "evaluate", 5_000_000, "its files declare 1,153,"),
], ids=["hdf5-dataset", "zip-member"])
def test_a_keras_file_declaring_gigabytes_is_refused(tmp_path, linear_keras_file, weights, command, largest,
                                                     message):
    bomb = tmp_path / "bomb.keras"
    rewrite_archive(linear_keras_file, bomb, {"model.weights.h5": weights})
    assert bomb.stat().st_size < largest
    result = CliRunner().invoke(cli, [command, str(bomb)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_keras_archive_check_passes_a_real_model(linear_keras_file):
    from mnist_zoo.inference.modelfile import load_classifier

    assert load_classifier(linear_keras_file).count_params() == 7850


def test_an_onnx_graph_that_would_build_a_huge_constant_is_refused(tmp_path):
    import_or_skip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    from mnist_zoo.errors import ModelFileError
    from mnist_zoo.inference.runtimes import open_classifier

    # y = x @ W + sum(zeros(100000, 100000)): onnxruntime would fold the 40 GB constant when it loads.
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["scores"]),
         helper.make_node("ConstantOfShape", ["big_shape"], ["big"]),
         helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
         helper.make_node("Add", ["scores", "total"], ["y"])],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(np.zeros((784, 10), np.float32), "W"),
         numpy_helper.from_array(np.array([100_000, 100_000], np.int64), "big_shape")],
    )
    path = tmp_path / "bomb.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ModelFileError, match="its tensors declare 40,000,"):
        open_classifier(path)


def test_declared_tensor_sizes_count_unknown_dimensions_as_one(tmp_path):
    import numpy as np

    from mnist_zoo.errors import ModelFileError
    from mnist_zoo.inference.model_limits import check_file_size, check_tensor_bytes

    check_tensor_bytes(tmp_path, [([-1, 784], np.float32), ([None, 10], np.float32)], max_bytes=3200)
    with pytest.raises(ModelFileError, match="its tensors declare 4,000 bytes, more than the 3,999 accepted"):
        check_tensor_bytes(tmp_path, [([1000], np.float32)], max_bytes=3999)
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(bytes(5000))
    with pytest.raises(ModelFileError, match="it holds 5,000 bytes"):
        check_file_size(tmp_path / "saved_model", max_bytes=4096)


# ----------------------------------------------------------------------------- model files, through the commands
#
# Each hostile file is handed to `mnist-zoo evaluate FILE` and `mnist-zoo predict FILE digit.npy`, as a
# user would: one `Error:` line naming the file and the limit, exit status 2, nothing written. A
# control beside each (the same kind of file within the limit) shows that the limit, and not
# something else about the file, refused it.

GIB = 1 << 30


def refusals(model, tmp_path, *options: str) -> list:
    """`evaluate MODEL` and `predict MODEL digit.npy` (with `options`), each refused: their one-line errors."""
    import numpy as np

    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), np.uint8))
    before = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    errors = []
    for args in (["evaluate", str(model), *options], ["predict", str(model), str(digit), *options]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.stderr.splitlines() if line]
        assert len(lines) == 1 and lines[0].startswith(f"Error: {model}: "), (args, result.output)
        errors.append(lines[0])
    assert sorted(path for path in tmp_path.rglob("*") if path.is_file()) == before  # no report, no plots
    return errors


def predicted(model, tmp_path, *options: str) -> dict:
    """`predict MODEL digit.npy --json` (with `options`), which must succeed: the control."""
    import json

    import numpy as np

    digit = tmp_path / "control-digit.npy"
    np.save(digit, np.zeros((28, 28), np.uint8))
    result = CliRunner().invoke(cli, ["predict", str(model), str(digit), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]


def sparse_file(path, size: int):
    """A file of `size` bytes that takes no disk space (a hole): the size is what the limits read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def keras_archive_with_members(source, target, members: int):
    """A copy of a .keras archive padded with empty assets/ files to `members` files in all."""
    import zipfile

    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        names = original.namelist()
        for name in names:
            copy.writestr(original.getinfo(name), original.read(name))
        for index in range(members - len(names)):
            copy.writestr(f"assets/padding-{index:05d}", b"")
    return target


def test_a_keras_file_of_more_than_10000_members_is_refused_by_the_commands(tmp_path, linear_keras_file):
    from mnist_zoo.inference.model_limits import MAX_ARCHIVE_MEMBERS

    assert MAX_ARCHIVE_MEMBERS == 10_000  # docs/robustness.md: "at most 10,000 members"
    at_limit = keras_archive_with_members(linear_keras_file, tmp_path / "at-limit.keras", 10_000)
    assert len(predicted(at_limit, tmp_path)["top_k"]) == 3
    bomb = keras_archive_with_members(linear_keras_file, tmp_path / "bomb.keras", 10_001)
    assert bomb.stat().st_size < 2_000_000
    for error in refusals(bomb, tmp_path):
        assert error == (f"Error: {bomb}: the archive holds 10,001 files, more than the 10,000 accepted; "
                         "not a .keras model")


def onnx_classifier(path, **save_options):
    """A softmax-regression .onnx classifier (float (batch, 784) in, probabilities out)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32), "W")],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path), **save_options)
    return path


def test_an_onnx_file_with_external_data_is_refused_by_the_commands(tmp_path, monkeypatch):
    import_or_skip("onnxruntime")
    assert predicted(onnx_classifier(tmp_path / "inside.onnx"), tmp_path)["prediction"] in "0123456789"
    outside = tmp_path / "outside"
    outside.mkdir()
    bomb = onnx_classifier(outside / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                           location="weights.bin", size_threshold=0)
    assert (outside / "weights.bin").stat().st_size == 784 * 10 * 4  # the weights live beside it
    # onnxruntime, given the model's bytes, reads the file the model names from the working
    # directory: here it exists, so only our check stands between the command and reading it.
    monkeypatch.chdir(outside)
    for error in refusals(bomb, tmp_path):
        assert error == (f"Error: {bomb}: the model keeps its weights in external files; only self-contained "
                         ".onnx files are accepted")


@pytest.fixture(scope="module")
def tflite_bomb(tmp_path_factory):
    """A 33 kB .tflite whose declared tensors take 1.25 GB: a Tile of its input, which LiteRT would
    allocate in `allocate_tensors` (and, batched, far more)."""
    import_or_skip("ai_edge_litert")
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 784], tf.float32)])
    def bomb(image):
        big = tf.tile(image, [1, 400_000])  # (1, 313,600,000) float32
        return tf.nn.softmax(tf.matmul(image, tf.zeros([784, 10])) + tf.reduce_sum(big, axis=1, keepdims=True))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([bomb.get_concrete_function()], bomb)
    path = tmp_path_factory.mktemp("tflite") / "bomb.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_tflite_file_declaring_gigabytes_of_tensors_is_refused_by_the_commands(tmp_path, tflite_bomb):
    import re

    assert tflite_bomb.stat().st_size < 100_000
    for error in refusals(tflite_bomb, tmp_path):
        declared = re.fullmatch(rf"Error: {re.escape(str(tflite_bomb))}: its tensors declare ([\d,]+) bytes, more "
                                r"than the 1,073,741,824 accepted for an MNIST classifier; refused before loading",
                                error)
        assert declared, error
        assert int(declared.group(1).replace(",", "")) >= 313_600_000 * 4


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A real SavedModel of a small Keras classifier (784 -> 10 softmax)."""
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path_factory.mktemp("savedmodel") / "saved_model"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def test_a_savedmodel_folder_over_a_gigabyte_is_refused_by_the_commands(tmp_path, saved_model):
    import shutil

    folder = Path(shutil.copytree(saved_model, tmp_path / "saved_model"))
    assert len(predicted(folder, tmp_path, "--unsafe")["top_k"]) == 3  # a SavedModel is loaded only if trusted
    # The same folder with one more file: 1 GiB in all (a sparse file, no disk space), which the
    # limit counts before TensorFlow reads anything.
    sparse_file(folder / "assets" / "padding.bin", GIB)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    for error in refusals(folder, tmp_path, "--unsafe"):
        assert error == (f"Error: {folder}: it holds {size:,} bytes, more than the {GIB:,} accepted for an "
                         "MNIST classifier; refused before loading")


def test_a_tflite_file_over_a_gigabyte_is_refused_by_the_commands(tmp_path):
    import_or_skip("ai_edge_litert")
    bomb = sparse_file(tmp_path / "models" / "huge.tflite", GIB + 1)
    for error in refusals(bomb, tmp_path):
        assert error == (f"Error: {bomb}: it holds {GIB + 1:,} bytes, more than the {GIB:,} accepted for an "
                         "MNIST classifier; refused before loading")
