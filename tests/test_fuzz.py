"""Property-based fuzzing with Hypothesis: hostile inputs give a valid result or our own one-line error.

Each target runs a fixed, seeded budget of examples; `MNIST_ZOO_FUZZ_EXAMPLES=N` runs N random
examples per target instead (docs/robustness.md gives the figures and the command).
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import numpy as np
import pytest

from tests.skips import import_or_skip

hypothesis = import_or_skip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mnist_zoo.errors import ConfigError, DataError, ModelFileError  # noqa: E402

FUZZ_ENV = "MNIST_ZOO_FUZZ_EXAMPLES"


def _event(name: str) -> None:
    """Counts an outcome in Hypothesis's statistics (`--hypothesis-show-statistics`), when inside a fuzz test."""
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():
        hypothesis.event(name)


def _read_or_refuse(read, error_type, outcome: str = "read"):
    """`read()`'s result, or None when it raises our own one-line `error_type`; each outcome is counted."""
    try:
        result = read()
    except error_type as error:
        assert str(error).strip().count("\n") == 0
        _event("refused")
        return None
    _event(outcome)
    return result


def budget(default: int):
    """Hypothesis settings: `default` seeded examples, or $MNIST_ZOO_FUZZ_EXAMPLES random ones."""
    requested = os.environ.get(FUZZ_ENV)
    return settings(
        max_examples=int(requested) if requested else default,
        derandomize=not requested,  # the suite is reproducible; a long run explores
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


# ---------------------------------------------------------------- config loading

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20), st.floats(allow_nan=True),
                    st.text(max_size=20))
KNOWN_KEYS = ["model", "type", "name", "data", "train", "epochs", "batch_size", "optimizer", "learning_rate",
              "hidden_units", "dropout_rate", "precision", "seed", "validation_size", "loss", "schedule",
              "early_stopping", "distribution", "reference", "dataset", "train_limit", "filters", "kernel_size"]
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                          st.dictionaries(KEYS, children, max_size=4)),
                      max_leaves=12)


def _yaml_documents():
    import yaml

    structured = VALUES.map(lambda value: yaml.safe_dump(value, default_flow_style=None))
    bundled = st.sampled_from(_bundled_texts())
    # A bundled config with a line replaced, inserted or cut: reaches validation of every section.
    edited = st.tuples(bundled, st.integers(0, 60), st.text(max_size=40), st.sampled_from(["replace", "insert", "cut"]))
    return st.one_of(structured, st.text(max_size=200), bundled, edited.map(_edit))


def _bundled_texts() -> list[str]:
    from mnist_zoo.config.loading import bundled_config_names, bundled_config_path

    return [bundled_config_path(name).read_text() for name in bundled_config_names()]


def _edit(case) -> str:
    text, line, new, how = case
    lines = text.splitlines()
    line %= max(1, len(lines))
    if how == "replace":
        lines[line] = new
    elif how == "insert":
        lines.insert(line, new)
    else:
        del lines[line:]
    return "\n".join(lines)


def _check_config_outcome(load):
    """`load()` gives a config that round-trips through its YAML, or a ConfigError with a message."""
    from mnist_zoo.config.loading import config_to_yaml, safe_yaml, validate_config

    try:
        config = load()
    except ConfigError as error:
        assert str(error).strip() and "Traceback" not in str(error)
        _event("refused")
        return
    again = validate_config(safe_yaml(config_to_yaml(config), "round trip"), "round trip")
    assert again == config
    _event("valid")


@budget(400)
@given(text=_yaml_documents())
def test_any_yaml_document_gives_a_config_or_a_config_error(tmp_path_factory, text):
    from mnist_zoo.config.loading import load_config

    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text, encoding="utf-8")
    _check_config_outcome(lambda: load_config(path))


SET_KEYS = st.one_of(
    st.sampled_from(["model.hidden_units", "model.dropout_rate", "train.epochs", "train.batch_size",
                     "train.optimizer", "train.optimizer.learning_rate", "data.validation_size", "model",
                     "model.type", "train.precision", "train.schedule", "train.loss.name", "seed"]),
    st.text(max_size=20),
)


@budget(400)
@given(overrides=st.lists(st.one_of(
    st.tuples(SET_KEYS, st.text(max_size=30)).map(lambda pair: f"{pair[0]}={pair[1]}"),
    st.tuples(SET_KEYS, VALUES).map(lambda pair: f"{pair[0]}={_flow_yaml(pair[1])}"),
    st.text(max_size=40),
), max_size=4), model=st.sampled_from(["linear", "mlp", "cnn"]))
def test_any_set_strings_give_a_config_or_a_config_error(overrides, model):
    from mnist_zoo.config.loading import bundled_config_path, load_config

    _check_config_outcome(lambda: load_config(bundled_config_path(model), overrides))


def _flow_yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10 ** 6).strip().replace("\n", " ")


# ---------------------------------------------------------------- IDX and npz files


@pytest.fixture(scope="module")
def real_files(real_mnist):
    """Small real IDX contents (100 test images, their labels) and an npz of them."""
    from tests.helpers import idx_bytes

    images, labels = real_mnist.test_images[:100], real_mnist.test_labels[:100]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=images[:60], y_train=labels[:60], x_test=images[60:], y_test=labels[60:])
    return Contents({"images": idx_bytes(images), "labels": idx_bytes(labels), "npz": buffer.getvalue()})


class Contents(dict):
    """File contents by name, shown by their names in Hypothesis's reports (not megabytes of bytes)."""

    def __repr__(self) -> str:
        return f"Contents({', '.join(self)})"


def _corrupt(content: bytes, data) -> bytes:
    """Truncations, bit flips, header rewrites and insertions, drawn from `data`."""
    content = bytearray(content)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        kind = data.draw(st.sampled_from(["truncate", "flip", "header", "insert", "flip-early"]), label="kind")
        if not content:
            break
        if kind == "truncate":
            del content[data.draw(st.integers(0, len(content) - 1), label="cut at"):]
        elif kind in ("flip", "flip-early"):
            limit = min(len(content), 32) if kind == "flip-early" else len(content)
            position = data.draw(st.integers(0, limit - 1), label="byte")
            content[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif kind == "header":
            position = data.draw(st.integers(0, max(0, min(len(content), 16) - 4)), label="field")
            value = data.draw(st.one_of(st.integers(0, 2 ** 32 - 1), st.sampled_from([0, 1, 28, 2 ** 31, 2 ** 32 - 1])))
            content[position:position + 4] = value.to_bytes(4, "big")
        else:
            position = data.draw(st.integers(0, len(content)), label="insert at")
            content[position:position] = data.draw(st.binary(min_size=1, max_size=64), label="inserted")
    return bytes(content)


@budget(600)
@given(data=st.data())
def test_corrupted_idx_files_give_arrays_or_a_data_error(tmp_path_factory, real_files, data):
    from mnist_zoo.data import idx

    kind = data.draw(st.sampled_from(["images", "labels"]), label="file")
    content = _corrupt(real_files[kind], data)
    compress = data.draw(st.booleans(), label="gzip")
    raw = gzip.compress(content, compresslevel=1) if compress else content
    if compress and data.draw(st.booleans(), label="corrupt the gzip too"):
        raw = _corrupt(raw, data)
    path = tmp_path_factory.mktemp("fuzz") / "file-idx"
    path.write_bytes(raw)
    array = _read_or_refuse(lambda: idx.read_images(path) if kind == "images" else idx.read_labels(path), DataError)
    if array is None:
        return
    assert array.dtype == np.uint8
    if kind == "images":
        assert array.ndim == 3 and array.shape[1:] == (28, 28)
    else:
        assert array.ndim == 1 and (array.size == 0 or array.max() <= 9)


@budget(300)
@given(data=st.data())
def test_corrupted_npz_files_give_a_data_set_or_a_data_error(tmp_path_factory, real_files, data):
    from mnist_zoo.data.datasets import load_npz

    path = tmp_path_factory.mktemp("fuzz") / "mnist.npz"
    path.write_bytes(_corrupt(real_files["npz"], data))
    dataset = _read_or_refuse(lambda: load_npz(path, "mnist"), DataError)
    if dataset is None:
        return
    assert dataset.train_images.shape[1:] == (28, 28) and len(dataset.train_images) == len(dataset.train_labels)


@budget(300)
@given(data=st.data())
def test_corrupted_npy_files_give_pixels_or_a_data_error(tmp_path_factory, real_files, data):
    from mnist_zoo.inference.pictures import read_array

    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(real_files["images"][16:16 + 784 * 4], np.uint8).reshape(4, 28, 28))
    path = tmp_path_factory.mktemp("fuzz") / "digits.npy"
    path.write_bytes(_corrupt(buffer.getvalue(), data))
    pixels = _read_or_refuse(lambda: read_array(path), DataError)
    if pixels is None:
        return
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (28, 28)


# ---------------------------------------------------------------- user pictures

# Modes and the formats that can store them.
MODE_FORMATS = {
    "1": ["PNG", "BMP", "TIFF", "GIF"], "L": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"], "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"], "RGBA": ["PNG", "TIFF", "WEBP", "GIF"],
    "CMYK": ["JPEG", "TIFF"], "YCbCr": ["JPEG", "TIFF"], "LAB": ["TIFF"], "I": ["TIFF"],
    "I;16": ["PNG", "TIFF"], "F": ["TIFF"],
}
IMAGE_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*",
                b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@st.composite
def pictures(draw) -> bytes:
    """An encoded picture of any mode and size up to 4000x4000, or random bytes behind an image header."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(IMAGE_MAGICS)) + draw(st.binary(max_size=2000))
    mode = draw(st.sampled_from(sorted(MODE_FORMATS)))
    image_format = draw(st.sampled_from(MODE_FORMATS[mode]))
    small, large = st.integers(1, 64), st.integers(1, 4000)
    width, height = draw(st.tuples(small, small) if draw(st.integers(0, 4)) else st.tuples(large, large))
    content = make_picture(mode, image_format, width, height, draw(st.integers(0, 2 ** 32 - 1)),
                           draw(st.sampled_from(["blocks", "blank", "noise"])))
    if draw(st.integers(0, 4)) == 0:  # a damaged file
        content = content[:draw(st.integers(0, len(content)))]
    return content


def make_picture(mode: str, image_format: str, width: int, height: int, seed: int, style: str) -> bytes:
    """A `width` x `height` picture in `mode`, encoded as `image_format`: random blocks, one colour, or noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    # Random content at a coarse grid, scaled up: strokes and blocks, cheap to make at 4000x4000.
    coarse = Image.fromarray(rng.integers(0, 256, (min(height, 16), min(width, 16), 4), dtype=np.uint8), "RGBA")
    if style == "blank":
        coarse = Image.new("RGBA", coarse.size, tuple(int(v) for v in rng.integers(0, 256, 4)))
    image = coarse.resize((width, height), Image.Resampling.NEAREST)
    if style == "noise" and width * height <= 256 * 256:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    buffer = io.BytesIO()
    _to_mode(image, mode).save(buffer, format=image_format)
    return buffer.getvalue()


def _to_mode(image, mode: str):
    from PIL import Image

    if mode in ("I", "I;16", "F"):  # 16-bit and float data, from numpy (Pillow picks the mode from the dtype)
        gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray({"I": gray.astype(np.int32), "I;16": gray, "F": gray.astype(np.float32) / 65535}[mode])
    if mode == "LAB":
        return Image.merge("LAB", image.convert("RGB").split())
    return image.convert(mode)


@budget(60)
@given(content=pictures())
def test_any_picture_gives_a_digit_or_a_data_error(content):
    _check_picture_outcome(content)


# The extremes of the size range, which random draws seldom reach, in every mode.
@pytest.mark.parametrize("width, height", [(1, 1), (4000, 1), (1, 4000), (4000, 4000)])
@pytest.mark.parametrize("mode", sorted(MODE_FORMATS))
def test_pictures_at_the_size_extremes_give_a_digit_or_a_data_error(mode, width, height):
    _check_picture_outcome(make_picture(mode, MODE_FORMATS[mode][-1], width, height, seed=0, style="blocks"))


def _check_picture_outcome(content: bytes) -> None:
    from mnist_zoo.inference.pictures import prepare_picture

    digit = _read_or_refuse(lambda: prepare_picture(content), DataError, "digit")
    if digit is None:
        return
    assert digit.shape == (28, 28) and digit.dtype == np.uint8


# ---------------------------------------------------------------- .keras files


@pytest.fixture(scope="module")
def keras_bytes(tmp_path_factory):
    """A real tiny .keras classifier (784-10, with its optimizer state) as bytes."""
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 784), np.float32), np.zeros(8, np.int64), verbose=0)
    path = tmp_path_factory.mktemp("fuzz-keras") / "model.keras"
    model.save(path)
    return Contents({"model.keras": path.read_bytes()})


@budget(80)
@given(data=st.data())
def test_corrupted_keras_files_give_a_model_or_a_model_error(tmp_path_factory, keras_bytes, data):
    from mnist_zoo.inference.modelfile import load_classifier

    original = keras_bytes["model.keras"]
    content = _corrupt(original, data)
    if data.draw(st.booleans(), label="rewrite a member"):
        content = _rewrite_member(original, data)
    path = tmp_path_factory.mktemp("fuzz") / "model.keras"
    path.write_bytes(content)
    model = _read_or_refuse(lambda: load_classifier(path), ModelFileError, "loaded")
    if model is None:
        return
    assert model.outputs[0].shape[-1] == 10


def _rewrite_member(content: bytes, data) -> bytes:
    """The archive with one member (config, metadata or weights) corrupted inside a valid zip."""
    source = zipfile.ZipFile(io.BytesIO(content))
    target_buffer = io.BytesIO()
    name = data.draw(st.sampled_from(source.namelist()), label="member")
    with zipfile.ZipFile(target_buffer, "w") as target:
        for member in source.namelist():
            member_content = source.read(member)
            target.writestr(member, _corrupt(member_content, data) if member == name else member_content)
    return target_buffer.getvalue()


# ---------------------------------------------------------------- what fuzzing found, kept as plain tests


@pytest.mark.parametrize("text, overrides, message", [
    ("\x1f\nmodel: {type: linear}\n", [], "character #x001f at position 0 is not allowed in YAML"),
    ("model: {type: linear}\n", ["model.type=[]"], "model.type: unknown model []"),
    ("model: {type: linear}\n", ["train.loss.name=[]"], "unknown loss '[]'"),
    ("model: {type: linear}\n", ["train.optimizer={name: {a: 1}}"], "unknown optimizer"),
])
def test_found_config_escapes_are_config_errors(tmp_path, text, overrides, message):
    from mnist_zoo.config.loading import load_config

    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, overrides)


def test_found_picture_modes_are_read(tmp_path):
    from PIL import Image

    from mnist_zoo.inference.pictures import prepare_picture

    stroke = np.zeros((40, 40), np.uint8)
    stroke[5:35, 18:22] = 255  # a "1"
    lab = Image.merge("LAB", [Image.fromarray(stroke)] * 3)
    floats = Image.fromarray(stroke.astype(np.float32) / 255)  # mode F, values in [0, 1]
    for name, image in (("lab.tif", lab), ("float.tif", floats)):
        image.save(tmp_path / name)
        digit = prepare_picture(tmp_path / name)
        assert digit.max() == 255 and digit[:, :10].max() == 0, name  # a centred vertical stroke


@pytest.mark.parametrize("content, message", [
    # a deflate stream with a flipped bit: zlib.error inside zipfile
    (None, r"a\.npz:?\S*: not a readable \.np[yz]"),
    # a header whose dict is cut by a flipped byte: tokenize.TokenError inside numpy
    (b"\x93NUMPY\x01\x00v\x00z'descr': '|u1', 'fortran_order': False, 'shape': (4, 28, 28), }" + b" " * 53 + b"\n",
     "not a readable .npy array"),
])
def test_found_array_escapes_are_data_errors(tmp_path, content, message):
    from mnist_zoo.data.arrays import read_npy, read_npz

    if content is None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x_train=(np.arange(400_000) % 251).astype(np.uint8))
        archive = bytearray(buffer.getvalue())
        archive[len(archive) // 3] ^= 0x10  # inside the compressed data of x_train.npy, past its header
        (tmp_path / "a.npz").write_bytes(bytes(archive))
        with pytest.raises(DataError, match=message):
            read_npz(tmp_path / "a.npz", ("x_train",))
    else:
        (tmp_path / "a.npy").write_bytes(content)
        with pytest.raises(DataError, match=message):
            read_npy(tmp_path / "a.npy")


def test_a_damaged_utf8_member_name_in_an_npz_is_a_data_error(tmp_path):
    from mnist_zoo.data.arrays import read_npz

    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.zeros(10, np.uint8))
    archive = bytearray(buffer.getvalue())
    archive[7] |= 0x08  # the local header's flag 0x0800: "the name is UTF-8"
    archive[30] = 0xFF  # its first name byte, invalid UTF-8: zipfile raised UnicodeDecodeError
    (tmp_path / "a.npz").write_bytes(bytes(archive))
    with pytest.raises(DataError, match="not a readable .npz archive"):
        read_npz(tmp_path / "a.npz", ("x_train",))
