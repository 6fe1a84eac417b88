"""What a predict request carries, read into the 28x28 image the models see: a picture's bytes or 784 pixel values."""

from __future__ import annotations

import json
import re

import numpy as np

from mnist_zoo.errors import DataError
from mnist_zoo.inference import pictures
from mnist_zoo.web.models import DEFAULT_TOP_K

MAX_PICTURE_PIXELS = 4096 * 4096
"""Larger uploads are refused from their header, before decoding: a 12-megapixel phone photo
(4032x3024) passes, and the page scales larger photos down in the browser before sending them.
Each picture being prepared holds up to 4 bytes a pixel while it decodes (67 MB here)."""
MAX_JSON_BYTES = 256 * 1024
"""784 pixel values take at most ~20 kB, however they are written; larger JSON is refused unread."""
MAX_JSON_DEPTH = 4
"""{"pixels": [[[...]]]}: an object, the rows, the pixels and a channel. Python's JSON parser recurses
once per level (a deep enough body is a RecursionError), and walking a deep one costs seconds."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.S)
"""A JSON string, or the rest of the body after an unterminated one: matched without backtracking,
so that scanning any body takes time in proportion to its length."""
MAX_TOP_K = 10
JSON_KEYS = ("pixels", "model", "top_k")


UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
"""The decoders an upload reaches: what browsers and phones send. TIFF, which `predict` reads
from your own files, is left out: a tiled TIFF of a single declared pixel can make libtiff inflate
gigabytes for minutes, which a page open to other users' uploads must not risk."""


MAX_JPEG_SCANS = 100
"""A progressive JPEG has about 10 scans; each makes libjpeg walk every block of the picture again,
so an 8 MiB upload of 200,000 forty-byte scans would cost minutes. Within compressed data a 0xFF
byte is followed by 0x00 or a restart code, so each FF DA in the bytes starts a scan (or a
thumbnail's): counting them bounds the work before decoding."""


def image_from_picture(data: bytes, name: str = "upload") -> np.ndarray:
    """A PNG, JPEG (or other) picture's bytes, prepared as `mnist-zoo predict` prepares a file.

    Raises:
        DataError: empty, not a picture, too large, or blank.
    """
    if not data:
        raise DataError(f"{name}: empty; send a PNG or JPEG picture, or JSON with 784 pixel values")
    data = bytes(data)
    if data.startswith(b"\xff\xd8") and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        raise DataError(f"{name}: a JPEG of {scans:,} scans, more than the {MAX_JPEG_SCANS} accepted; "
                        "save it again as an ordinary JPEG or PNG")
    return pictures.prepare_picture(data, name, MAX_PICTURE_PIXELS, formats=UPLOAD_FORMATS)


def image_from_values(values) -> np.ndarray:
    """784 pixel values (flat or 28 rows of 28) taken as an MNIST-format image, as `predict` takes a .npy.

    Integers are 0-255 pixels; floats are 0-1, or 0-255 if any is above 1.

    Raises:
        DataError: not a list of 784 numbers in range.
    """
    if not isinstance(values, list) or any(isinstance(value, bool) for value in _flatten(values)):
        raise DataError(f"pixels: expected a list of 784 numbers, got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged rows
        raise DataError(f"pixels: expected 784 numbers or 28 rows of 28 ({error})") from None
    if array.size != 784:
        raise DataError(f"pixels: expected 784 values (28x28), got {array.size}")
    return pictures.as_pixels(array, "pixels")[0]


def _flatten(values):
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def top_k_from(value) -> int:
    """A request's top_k (a number, or its text in a query or form field), 1-10; DEFAULT_TOP_K if absent.

    Raises:
        DataError: not a whole number from 1 to MAX_TOP_K.
    """
    if value is None or value == "":
        return DEFAULT_TOP_K
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 1 <= number <= MAX_TOP_K:
        raise DataError(f"top_k: expected a whole number from 1 to {MAX_TOP_K}, got {value!r}")
    return number


def model_id_from(value) -> str | None:
    """A request's model id (None: all models).

    Raises:
        DataError: not a string.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DataError(f"model: expected a model id (a string from GET /api/models), got {value!r}")
    return value


def check_json_shape(body: bytes) -> None:
    """Refuses a JSON body too large or too deeply nested for a predict request, before it is parsed.

    Raises:
        DataError: over MAX_JSON_BYTES, or nested deeper than MAX_JSON_DEPTH (brackets inside
            strings do not count).
    """
    if len(body) > MAX_JSON_BYTES:
        raise DataError(f"a JSON body of {len(body):,} bytes is more than the {MAX_JSON_BYTES:,} accepted; "
                        "784 pixel values need about 20 kB")
    _utf8_text(body)  # json.loads would also take UTF-16 and UTF-32, which this byte scan misreads
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", bytes(body)), dtype=np.uint8)
    steps = np.zeros(len(skeleton), dtype=np.int32)
    steps[(skeleton == ord("[")) | (skeleton == ord("{"))] = 1
    steps[(skeleton == ord("]")) | (skeleton == ord("}"))] = -1
    depth = int(steps.cumsum().max()) if len(steps) else 0
    if depth > MAX_JSON_DEPTH:
        raise DataError(f"JSON nested {depth} levels deep, more than the {MAX_JSON_DEPTH} a predict request "
                        'needs ({"pixels": [...784 values] or 28 rows of 28})')


def _utf8_text(body: bytes) -> str:
    """A JSON body as text: UTF-8 without a byte-order mark, as RFC 8259 requires.

    Raises:
        DataError: another encoding (UTF-16 and UTF-32 hold NUL bytes), or bytes that are not UTF-8.
    """
    if b"\x00" in body or body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise DataError("the JSON body must be UTF-8 (without a byte-order mark); got another encoding")
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"the JSON body is not valid UTF-8 ({error.reason} at byte {error.start})") from None


def parse_json(body: bytes) -> tuple[np.ndarray, str | None, int]:
    """(image, model id, top_k) from a JSON body {"pixels": [...784], "model": id, "top_k": k}.

    Raises:
        DataError: too large or deep (`check_json_shape`), not JSON, not an object, unknown keys,
            or bad values.
    """
    check_json_shape(body)
    try:
        payload = json.loads(_utf8_text(body))  # the text scanned, never a re-guessed encoding
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"the body is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise DataError(f"expected a JSON object with {', '.join(JSON_KEYS)}, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(JSON_KEYS))
    if unknown:
        raise DataError(f"unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(JSON_KEYS)}")
    if "pixels" not in payload:
        raise DataError('missing "pixels": 784 values (or send a PNG or JPEG picture instead of JSON)')
    return image_from_values(payload["pixels"]), model_id_from(payload.get("model")), top_k_from(payload.get("top_k"))
