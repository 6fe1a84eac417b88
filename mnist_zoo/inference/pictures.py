"""Turn any digit picture into an MNIST-style 28x28 image, the way the MNIST digits were made."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mnist_zoo.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy",)
DIGIT_BOX = 20  # MNIST: each digit scaled to fit 20x20, then centred in 28x28 by centre of mass
IMAGE_SIZE = 28
INK_THRESHOLD = 0.2  # of the ink range: fainter pixels do not widen the bounding box (noise, paper grain)
MIN_CONTRAST = 0.05  # darkest-to-lightest spread below which an image is called blank
MAX_PIXELS = 50_000_000
"""Larger pictures are refused from their header, before decoding: a 48-megapixel phone photo
passes; a small file that would decode to gigabytes does not (Pillow itself only warns below
89 million pixels and refuses above 179 million)."""
PICTURE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
"""The only decoders a picture reaches (JPEG's also opens the multi-picture JPEGs phones write). Pillow
would otherwise try each decoder it has on any bytes: EPS runs Ghostscript on them, and rarely
used decoders (McIdas, JPEG 2000, ...) are attack surface a digit never needs."""
WORKING_SIDE = 1024
"""Pictures whose longer side is above this are reduced (averaging whole blocks of pixels) to at
most this before any float copy is made: a digit fitted into 20x20 pixels loses nothing, and a
48-megapixel photo costs megabytes instead of the gigabyte its float copies would take. JPEGs
are decoded at 1/2, 1/4 or 1/8 scale directly (Pillow's draft mode)."""
_FORMAT_NAMES = {"WEBP": "WebP"}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def read_grayscale(source: Path | bytes, name: str | None = None, max_pixels: int | None = MAX_PIXELS,
                   formats: tuple[str, ...] = PICTURE_FORMATS) -> np.ndarray:
    """Reads an image of any mode and size as float32 grayscale in [0, 1] (1 = white).

    Only the `PICTURE_FORMATS` decoders are used. Transparent pixels are composited onto a
    background that contrasts with the visible strokes (white under dark strokes, black under
    light ones), so a digit drawn on a transparent canvas keeps its strokes whichever colour they
    are. Pictures larger than `WORKING_SIDE` are reduced first.

    Args:
        source: an image file, or its bytes (an upload).
        name: what error messages call it (default: the path, or "image").
        max_pixels: refuse larger images before decoding them (a small file can decode to gigabytes);
            None: no limit of ours.
        formats: the Pillow decoders tried (a subset of `PICTURE_FORMATS`).

    Raises:
        DataError: the data is not a picture in one of `formats`, cannot be decoded, or
            has more than `max_pixels` pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    from mnist_zoo.files import open_regular_file

    name = _name_of(source, name)
    try:
        # A FIFO or a device named as a picture would block or read forever: regular files only.
        handle = io.BytesIO(source) if isinstance(source, _BYTES) else open_regular_file(source, DataError)
    except OSError as error:
        raise DataError(f"{name}: cannot read the picture ({error.strerror})") from None
    try:
        with handle, Image.open(handle, formats=formats) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if max_pixels is not None and width * height > max_pixels:
                raise DataError(f"{name}: {width}x{height} pixels is more than the {max_pixels:,} pixels accepted; "
                                "scale the picture down")
            image.seek(0)  # the first frame of an animated GIF
            if max(width, height) > WORKING_SIDE and image.format in ("JPEG", "MPO"):
                image.draft(None, (-(-width * WORKING_SIDE // max(width, height)),
                                   -(-height * WORKING_SIDE // max(width, height))))
            ImageOps.exif_transpose(image, in_place=True)  # phone photos are often stored rotated
            image.load()
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked when it opens the file
        raise DataError(f"{name}: more than the {max_pixels or Image.MAX_IMAGE_PIXELS:,} pixels accepted ({error}); "
                        "scale the picture down") from None
    except UnidentifiedImageError:
        accepted = ", ".join(_FORMAT_NAMES.get(format_name, format_name) for format_name in formats)
        raise DataError(f"{name}: not a readable image (not a picture in one of {accepted})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{name}: not a readable image ({_without_object_names(error)})") from None
    image = _working_mode(image, name)
    if max(image.size) > WORKING_SIDE:
        image = image.reduce(-(-max(image.size) // WORKING_SIDE))
    if image.mode in ("I", "F"):
        values = np.array(image, dtype=np.float32)  # a copy of our own: scaled in place
        # 16-bit data, small ints in a wide mode, or floats in [0, 1]
        top = 65535.0 if values.max() > 255 else 1.0 if image.mode == "F" and values.max() <= 1 else 255.0
        values /= top
        return np.clip(values, 0, 1, out=values)
    # uint8 first, then float, scaled in place: np.asarray(image, dtype=float32) converts element by
    # element, and each fresh temporary of a large picture costs its page faults.
    if image.mode == "L":
        gray = np.asarray(image).astype(np.float32)
        gray /= 255.0
        return gray
    rgba = np.asarray(image).astype(np.float32)
    rgba /= 255.0
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    alpha = rgba[..., 3]
    if alpha.min() == 1.0:  # opaque (a canvas drawing): compositing would change nothing
        return gray
    visible = alpha > 0.5
    strokes_are_light = visible.any() and float(gray[visible].mean()) > 0.5 and not visible.all()
    background = 0.0 if strokes_are_light else 1.0
    return gray * alpha + background * (1 - alpha)


def _working_mode(image, name: str):
    """The picture in one of the modes read above: L, RGBA (transparency kept), I or F (wide values)."""
    if image.mode == "LAB":  # its first band is the lightness, which Pillow cannot convert to L
        return image.getchannel(0)
    if image.mode in _WIDE_MODES:
        return image if image.mode in ("I", "F") else image.convert("I")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    try:
        return image.convert("RGBA" if has_alpha else "L") if image.mode not in ("L", "RGBA") else image
    except ValueError as error:  # a mode Pillow reads but cannot convert
        raise DataError(f"{name}: {image.mode} pictures are not supported ({error}); save it as PNG or JPEG") from None


def _without_object_names(error: Exception) -> str:
    """An error's text without Python object reprs (`<_io.BytesIO object at 0x...>`): they mean nothing to a user."""
    import re

    return re.sub(r"<[\w.]+ object at 0x[0-9a-f]+>", "the picture", str(error))


def to_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 0-255 pixels, the MNIST files' own format, from an image in [0, 1] (rounded once)."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def prepare_picture(source: Path | bytes, name: str | None = None, max_pixels: int | None = MAX_PIXELS,
                    formats: tuple[str, ...] = PICTURE_FORMATS) -> np.ndarray:
    """A picture (a file or its bytes) as the 28x28 uint8 MNIST-style digit a model is shown (`mnist_style`).

    Args:
        source, name, max_pixels, formats: as for `read_grayscale`.
    """
    name = _name_of(source, name)
    return to_pixels(mnist_style(read_grayscale(source, name, max_pixels, formats), name))


_BYTES = (bytes, bytearray, memoryview)


def _name_of(source: Path | bytes, name: str | None) -> str:
    """What messages call a picture: the name given, else its path, else "image" for bytes."""
    if name is not None:
        return name
    return "image" if isinstance(source, _BYTES) else str(source)


def mnist_style(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """MNIST-style 28x28 float32 image (light digit on black, in [0, 1]) from a grayscale picture.

    Steps: invert if the background (the border's median) is light; stretch the ink range to
    [0, 1]; crop to the bounding box of the ink; scale to fit 20x20 keeping the aspect ratio;
    paste into 28x28 with the centre of mass in the middle.

    Raises:
        DataError: the picture is blank (no contrast).
    """
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise DataError(f"{name}: expected a 2-D picture, got shape {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        gray, background = 1.0 - gray, 1.0 - background
    ink = gray - background
    np.clip(ink, 0, None, out=ink)
    if float(ink.max()) < MIN_CONTRAST:
        raise DataError(f"{name}: blank image, no digit found")
    ink /= ink.max()
    # The ink's bounding box from row and column reductions: a fraction of np.nonzero's cost on a photo.
    marked = ink > INK_THRESHOLD
    rows, columns = np.flatnonzero(marked.any(axis=1)), np.flatnonzero(marked.any(axis=0))
    ink = ink[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]
    return _centre_by_mass(_fit_box(ink))


def _fit_box(ink: np.ndarray) -> np.ndarray:
    """Scales `ink` so that its longer side is DIGIT_BOX pixels, keeping the aspect ratio."""
    from PIL import Image

    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Pastes `digit` into a 28x28 canvas so that its centre of mass is at the centre."""
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    height, width = digit.shape
    total = float(digit.sum())
    rows, columns = np.indices(digit.shape)
    centre_row = float((rows * digit).sum()) / total if total else (height - 1) / 2
    centre_column = float((columns * digit).sum()) / total if total else (width - 1) / 2
    middle = (IMAGE_SIZE - 1) / 2
    # Keep the whole digit on the canvas even when its mass sits far off its box centre.
    top = int(np.clip(round(middle - centre_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(middle - centre_column), 0, IMAGE_SIZE - width))
    canvas[top: top + height, left: left + width] = digit
    return canvas


def read_array(path: Path) -> np.ndarray:
    """Images from a `.npy` file, taken as MNIST-format already: (n, 28, 28) uint8 pixels.

    Accepted shapes: (28, 28), (784,), (28, 28, 1), and a stack of any of them; uint8 0-255
    (kept as they are) or floats in [0, 1] (floats above 1 are read as 0-255).

    Raises:
        DataError: unreadable, declaring more than `arrays.MAX_ARRAY_BYTES`, or not 28x28 images.
    """
    from mnist_zoo.data.arrays import read_npy

    return as_pixels(read_npy(path), str(path))


def as_pixels(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Numbers taken as MNIST-format 28x28 images, as uint8 pixels (n, 28, 28): the rule of `read_array`.

    Raises:
        DataError: not numbers, not 28x28 images, or values outside 0-255.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "uif":
        raise DataError(f"{name}: expected numbers, got dtype {array.dtype}")
    shape = array.shape
    if not (shape[-1:] == (784,) or shape[-3:] == (28, 28, 1) or shape[-2:] == (28, 28)):
        raise DataError(f"{name}: expected 28x28 images (shape (28, 28), (784,) or a stack of them), got {shape}")
    array = array.reshape(-1, 28, 28)
    if array.dtype == np.uint8:
        return array
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 255):
        raise DataError(f"{name}: pixel values must lie in 0-255 (or 0-1 as floats), got "
                        f"{array.min()} to {array.max()}")
    array = array.astype(np.float32)
    if array.size and float(array.max()) > 1.0:
        array /= 255.0
    return to_pixels(array)
