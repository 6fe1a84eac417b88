"""`mnist-zoo predict`: MNIST-style preprocessing of real pictures in odd formats, top-k, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mnist_zoo.cli import cli
from mnist_zoo.errors import DataError
from mnist_zoo.inference.pictures import mnist_style, read_array, read_grayscale


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def paper_digit(digit: np.ndarray, scale: int = 8, canvas: int = 400, offset=(37, 91)) -> np.ndarray:
    """An MNIST digit as a photo-like picture: dark ink on light paper, big, off-centre (uint8)."""
    big = np.kron(digit.astype(np.float32) / 255.0, np.ones((scale, scale), np.float32))
    picture = np.full((canvas, canvas), 235.0, np.float32)  # light grey paper
    top, left = offset
    region = picture[top: top + big.shape[0], left: left + big.shape[1]]
    region -= big * 215.0  # dark ink where the digit is
    return np.clip(picture, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def digits(real_mnist):
    """The first test image of each class, and its label."""
    labels = real_mnist.test_labels
    indices = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]
    return real_mnist.test_images[indices], labels[indices]


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, small_mnist_dir):
    """A small CNN trained on real MNIST (the run directory)."""
    run_dir = tmp_path_factory.mktemp("predict") / "run"
    result = CliRunner().invoke(cli, [
        "train", "--model", "cnn", "--data-dir", str(small_mnist_dir), "--run-dir", str(run_dir), "--epochs", "4",
        "--set", "data.validation_size=200", "--set", "train.verbose=0",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_preprocessing_recovers_an_mnist_digit_from_a_photo_like_picture(digits):
    image = digits[0][3]
    restored = mnist_style(paper_digit(image).astype(np.float32) / 255.0)
    assert restored.shape == (28, 28) and restored.dtype == np.float32
    assert restored.min() == 0.0 and restored.max() == pytest.approx(1.0, abs=0.02)
    assert similarity(restored, image / 255.0) > 0.85  # MNIST digits are made the same way
    rows, columns = np.indices(restored.shape)
    centre = ((rows * restored).sum() / restored.sum(), (columns * restored).sum() / restored.sum())
    assert centre == pytest.approx((13.5, 13.5), abs=0.6)
    ink_rows, ink_columns = np.nonzero(restored > 0.2)
    assert max(np.ptp(ink_rows), np.ptp(ink_columns)) + 1 <= 21  # fits the 20x20 box


def save(tmp_path, name, image: Image.Image) -> str:
    path = tmp_path / name
    image.save(path)
    return str(path)


def odd_formats(tmp_path, digit: np.ndarray) -> dict[str, str]:
    """The same digit in many file formats and modes."""
    picture = paper_digit(digit)
    gray = Image.fromarray(picture, mode="L")
    rgba = np.zeros((*picture.shape, 4), np.uint8)
    rgba[..., 3] = 255 - picture  # ink only in the alpha channel: dark ink on a transparent canvas
    white_on_clear = rgba.copy()
    white_on_clear[..., :3] = 255  # white strokes on a transparent canvas
    return {
        "gray.png": save(tmp_path, "gray.png", gray),
        "rgb.jpg": save(tmp_path, "rgb.jpg", gray.convert("RGB")),
        "palette.gif": save(tmp_path, "palette.gif", gray.convert("P")),
        "bitmap.bmp": save(tmp_path, "bitmap.bmp", gray.convert("RGB")),
        "rgba.png": save(tmp_path, "rgba.png", Image.fromarray(rgba, mode="RGBA")),
        "white-on-clear.png": save(tmp_path, "white-on-clear.png", Image.fromarray(white_on_clear, mode="RGBA")),
        "sixteen-bit.png": save(tmp_path, "sixteen-bit.png",
                                Image.fromarray(picture.astype(np.uint16) * 257).convert("I;16")),
        "inverted.png": save(tmp_path, "inverted.png", Image.fromarray(255 - picture, mode="L")),
        "tiny.png": save(tmp_path, "tiny.png", Image.fromarray(digit, mode="L").resize((14, 14))),
        "huge.jpg": save(tmp_path, "huge.jpg", gray.resize((3000, 3000))),
        "bilevel.png": save(tmp_path, "bilevel.png", gray.convert("1", dither=Image.Dither.NONE)),  # a scan
    }


def test_every_format_gives_the_same_mnist_style_digit(tmp_path, digits):
    digit = digits[0][7]
    reference = mnist_style(paper_digit(digit).astype(np.float32) / 255.0)
    for name, path in odd_formats(tmp_path, digit).items():
        restored = mnist_style(read_grayscale(path), name)
        limit = 0.75 if name in ("tiny.png", "bilevel.png") else 0.93
        assert similarity(restored, reference) > limit, name


def test_blank_and_unreadable_images_are_errors(tmp_path):
    blank = save(tmp_path, "blank.png", Image.new("L", (50, 50), 255))
    with pytest.raises(DataError, match="blank image"):
        mnist_style(read_grayscale(blank), blank)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="not a readable image"):
        read_grayscale(tmp_path / "broken.png")


@pytest.mark.parametrize("shape", [(28, 28), (784,), (28, 28, 1), (3, 28, 28), (3, 784), (3, 28, 28, 1)])
def test_npy_shapes(tmp_path, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    np.save(tmp_path / "x.npy", array)
    images = read_array(tmp_path / "x.npy")
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(-1), array.reshape(-1))  # uint8 pixels are kept as they are


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_npy_floats_become_the_same_pixels(tmp_path, scale):
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "x.npy", pixels.astype(np.float32) / 255.0 * scale)
    np.testing.assert_array_equal(read_array(tmp_path / "x.npy"), pixels)


def test_npy_of_the_wrong_shape_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((32, 32)))
    with pytest.raises(DataError, match="expected 28x28 images"):
        read_array(tmp_path / "x.npy")


def test_predict_reads_real_digits_in_every_format(tmp_path, trained_model, digits):
    images, labels = digits
    folder = tmp_path / "mine"
    folder.mkdir()
    for digit, label in zip(images, labels):
        Image.fromarray(paper_digit(digit), mode="L").convert("RGB").save(folder / f"digit-{label}.jpg")
    result = invoke("predict", trained_model, folder, "--json", "--top-k", "3")
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [record["input"] for record in records] == [str(folder / f"digit-{label}.jpg") for label in labels]
    predicted = [int(record["prediction"]) for record in records]
    assert sum(p == int(label) for p, label in zip(predicted, labels)) >= 8  # a small model, 4 epochs
    for record in records:
        probabilities = [entry["probability"] for entry in record["top_k"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def test_predict_text_output_and_saved_inputs(tmp_path, trained_model, digits):
    paths = odd_formats(tmp_path, digits[0][2])
    saved = tmp_path / "seen"
    result = invoke("predict", trained_model / "best.keras", paths["rgba.png"], paths["sixteen-bit.png"],
                    "--save-preprocessed", saved, "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(str(tmp_path))]
    assert len(lines) == 2 and all("%" in line for line in lines)
    written = sorted(saved.iterdir())
    assert [path.name for path in written] == ["000-rgba.png", "001-sixteen-bit.png"]
    seen = np.asarray(Image.open(written[0]))
    assert seen.shape == (28, 28) and seen.dtype == np.uint8 and seen.max() > 200


def test_one_bad_file_does_not_stop_the_others(tmp_path, trained_model, digits):
    good = tmp_path / "good.npy"
    np.save(good, digits[0][:2])
    (tmp_path / "bad.png").write_text("not an image")
    result = CliRunner().invoke(cli, ["predict", str(trained_model), str(good), str(tmp_path / "bad.png"),
                                      str(tmp_path / "missing.png"), "--json"])
    assert result.exit_code == 2
    records = json.loads(result.stdout)
    assert [record["input"] for record in records] == [f"{good}[0]", f"{good}[1]", str(tmp_path / "bad.png"),
                                                       str(tmp_path / "missing.png")]
    assert "error" in records[2] and "no such file" in records[3]["error"]
    assert [int(record["prediction"]) for record in records[:2]] == [int(label) for label in digits[1][:2]]


def test_pixels_stay_uint8_from_the_file_to_the_model(tmp_path, digits):
    from mnist_zoo.inference.prediction import PreparedInput, predict_top_k, prepare

    images, _ = digits
    np.save(tmp_path / "stack.npy", images[:3])
    Image.fromarray(paper_digit(images[0]), mode="L").save(tmp_path / "photo.png")
    prepared = prepare([tmp_path / "stack.npy", tmp_path / "photo.png"])
    assert all(item.image.dtype == np.uint8 and item.image.shape == (28, 28) for item in prepared)
    np.testing.assert_array_equal(np.stack([item.image for item in prepared[:3]]), images[:3])
    with pytest.raises(TypeError, match="uint8"):
        predict_top_k(None, [PreparedInput(tmp_path / "x.npy", image=images[0] / 255.0)], 3)
