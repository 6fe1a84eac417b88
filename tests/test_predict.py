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


def every_format(folder, name: str, digit: np.ndarray) -> tuple[list[str], list[str]]:
    """One MNIST digit as a photo-like picture in every format and mode: (lossless files, lossy files)."""
    picture = paper_digit(digit)
    gray = Image.fromarray(picture, mode="L")
    rgba = np.zeros((*picture.shape, 4), np.uint8)
    rgba[..., 3] = 255 - picture  # dark ink in the alpha channel of a transparent canvas
    white_on_clear = rgba.copy()
    white_on_clear[..., :3] = 255
    lossless = {
        "gray.png": gray, "rgb.png": gray.convert("RGB"), "palette.png": gray.convert("P"),
        "palette.gif": gray.convert("P"), "bitmap.bmp": gray.convert("RGB"), "gray-alpha.png": gray.convert("LA"),
        "rgba.png": Image.fromarray(rgba, mode="RGBA"),
        "white-on-clear.png": Image.fromarray(white_on_clear, mode="RGBA"),
        "sixteen-bit.png": Image.fromarray(picture.astype(np.uint16) * 257).convert("I;16"),
        "inverted.png": Image.fromarray(255 - picture, mode="L"), "cmyk.tiff": gray.convert("CMYK"),
        "float.tiff": Image.fromarray(picture.astype(np.float32) / 255, mode="F"),
        "lossless.webp": gray.convert("RGB"),
    }
    lossy = {"photo.jpg": gray.convert("RGB"), "lossy.webp": gray.convert("RGB")}
    saved = {}
    for kind, images in (("lossless", lossless), ("lossy", lossy)):
        for suffix, image in images.items():
            path = folder / f"{name}-{suffix}"
            image.save(path, **({"lossless": True} if suffix == "lossless.webp" else {}))
            saved.setdefault(kind, []).append(str(path))
    return saved["lossless"], saved["lossy"]


def test_predict_reads_real_digits_in_every_format(tmp_path, trained_model, digits):
    # docs/commands.md (predict): image files in any format and colour mode, "prepared the way MNIST was";
    # `--save-preprocessed` writes "the 28x28 images the model actually saw"; a .npy is an image
    # "as it is". So: each real digit, in every lossless format, becomes the same 28x28 input and
    # gets the same prediction; a lossy copy becomes nearly the same input; and every prediction
    # is the model's answer to the input saved for it (predict on a .npy of those pixels).
    # Nothing here depends on how accurate the small model is.
    images, labels = digits
    folder = tmp_path / "mine"
    folder.mkdir()
    formats = {int(label): every_format(folder, f"digit-{label}", image) for image, label in zip(images, labels)}
    seen = tmp_path / "seen"
    result = invoke("predict", trained_model, folder, "--json", "--top-k", "3", "--save-preprocessed", seen)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    files = sorted(path for lossless, lossy in formats.values() for path in lossless + lossy)
    assert [record["input"] for record in records] == files  # every file read, none refused
    model_input = {record["input"]: np.asarray(Image.open(saved))
                   for record, saved in zip(records, sorted(seen.iterdir()))}  # 000-..., 001-...: input order
    by_input = {record["input"]: record for record in records}

    for label, (lossless, lossy) in formats.items():
        reference = lossless[0]  # the gray PNG
        assert model_input[reference].shape == (28, 28) and model_input[reference].dtype == np.uint8
        for path in lossless[1:]:
            np.testing.assert_array_equal(model_input[path], model_input[reference], err_msg=path)
            assert [entry["class"] for entry in by_input[path]["top_k"]] == \
                [entry["class"] for entry in by_input[reference]["top_k"]], path
        # JPEG at quality 75 and lossy WebP: similarity >= 0.99 here. Compression can move the
        # ink's bounding box by a pixel (JPEG at quality 95 did for one of these digits: 0.89),
        # which shifts every pixel of the same digit; a prediction may then change, so only
        # the input is compared.
        for path in lossy:
            assert similarity(model_input[path].astype(float), model_input[reference].astype(float)) > 0.85, path

    # The same pixels as a .npy stack, in the same order (the same batch): the same probabilities.
    stack = tmp_path / "seen.npy"
    np.save(stack, np.stack([model_input[record["input"]] for record in records]))
    again = invoke("predict", trained_model, stack, "--json", "--top-k", "3")
    assert again.exit_code == 0, again.output
    from_array = json.loads(again.stdout)
    assert [record["input"] for record in from_array] == [f"{stack}[{index}]" for index in range(len(records))]
    for record, array_record in zip(records, from_array):
        assert record["top_k"] == array_record["top_k"], record["input"]
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
    # The good file's answers are those it gets alone (whatever a small model answers on any CPU).
    alone = json.loads(CliRunner().invoke(cli, ["predict", str(trained_model), str(good), "--json"]).stdout)
    assert records[:2] == alone


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


# EXIF Orientation: how the stored pixels are turned for display (the EXIF specification's
# meaning of each value), written with numpy so as not to borrow the product's Pillow calls.
DISPLAYED = {
    2: np.fliplr,
    3: lambda stored: np.rot90(stored, 2),
    4: np.flipud,
    5: np.transpose,
    6: lambda stored: np.rot90(stored, -1),  # turn 90 degrees clockwise to display
    7: lambda stored: np.rot90(stored, 2).T,
    8: lambda stored: np.rot90(stored, 1),  # turn 90 degrees anticlockwise
}
STORED = {**DISPLAYED, 6: DISPLAYED[8], 8: DISPLAYED[6]}  # the camera's side: the inverse turn


def with_orientation(pixels: np.ndarray, orientation: int, path, **options) -> str:
    """Saves `pixels` (as stored) with an EXIF Orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **options)
    return str(path)


@pytest.fixture
def tiny_keras_model(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.save(tmp_path / "tiny.keras")
    return tmp_path / "tiny.keras"


def test_predict_turns_a_photo_upright_by_its_exif_orientation(tmp_path, digits, tiny_keras_model):
    # docs/commands.md (predict): each picture is "read as grayscale (EXIF rotation applied ...)". A phone
    # stores a photo as the sensor saw it, with an Orientation tag saying how to turn it: the
    # digit the model sees must be the one the user saw.
    from mnist_zoo.inference.pictures import to_pixels

    upright = paper_digit(digits[0][7])[:, 20:380]  # 400x360: a turn changes the shape too
    folder = tmp_path / "pictures"
    folder.mkdir()
    reference = str(folder / "upright.png")
    Image.fromarray(upright).save(reference)
    same_as = {}  # a tagged picture -> the upright picture whose model input it must equal
    for orientation, store in STORED.items():
        stored = np.ascontiguousarray(store(upright))
        assert np.array_equal(DISPLAYED[orientation](stored), upright), orientation  # the table itself
        same_as[with_orientation(stored, orientation, folder / f"exif-{orientation}.png")] = reference
    # Phone photos: RGB JPEGs stored turned by 90 degrees. JPEG is lossy, so each one's upright
    # reference is made from the pixels it decodes to, turned by numpy.
    for orientation in (6, 8):
        stored = np.stack([STORED[orientation](upright)] * 3, axis=-1)
        photo = with_orientation(stored, orientation, folder / f"photo-{orientation}.jpg", quality=90)
        decoded = np.asarray(Image.open(photo).convert("L"))  # as stored: convert() does not turn
        assert decoded.shape == stored.shape[:2]
        turned = str(folder / f"photo-{orientation}-turned.png")
        Image.fromarray(np.ascontiguousarray(DISPLAYED[orientation](decoded))).save(turned)
        same_as[photo] = turned
    inputs = [*same_as, *dict.fromkeys(same_as.values())]

    seen = tmp_path / "seen"
    result = invoke("predict", tiny_keras_model, *inputs, "--json", "--save-preprocessed", seen)
    assert result.exit_code == 0, result.output
    saved = sorted(seen.iterdir())  # 000-..., 001-...: in the order of the inputs
    assert len(saved) == len(inputs)
    model_input = {path: np.asarray(Image.open(image)) for path, image in zip(inputs, saved)}
    records = {record["input"]: record for record in json.loads(result.stdout)}
    for picture, upright_picture in same_as.items():
        np.testing.assert_array_equal(model_input[picture], model_input[upright_picture], err_msg=picture)
        assert records[picture]["prediction"] == records[upright_picture]["prediction"], picture
    # Without the turn the model would see another image: a missing rotation cannot pass.
    for orientation, store in STORED.items():
        unturned = to_pixels(mnist_style(store(upright).astype(np.float32) / 255.0))
        assert not np.array_equal(unturned, model_input[reference]), orientation
