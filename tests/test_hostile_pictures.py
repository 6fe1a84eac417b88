"""Hostile pictures: only the promised decoders, no program run on the bytes, large pictures reduced before floats."""

from __future__ import annotations

import io
import os
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from mnist_zoo.errors import DataError
from mnist_zoo.inference import pictures
from tests.helpers import python_memory_peak

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 28 28
%%EndComments
newpath 4 4 moveto 24 24 lineto stroke
showpage
%%EOF
"""


def digit_picture(side: int) -> Image.Image:
    """A dark 7-like stroke on white paper, `side` pixels square, drawn in proportion to the side."""
    canvas = np.full((side, side), 255, np.uint8)
    thickness = max(1, side // 20)
    top, left, right = side // 4, side // 3, 2 * side // 3
    canvas[top: top + thickness, left:right] = 0  # the bar
    for row in range(top, 3 * side // 4):  # the diagonal
        column = right - (row - top) * (right - left) // (side // 2)
        canvas[row, max(0, column - thickness): column] = 0
    return Image.fromarray(canvas)


def test_an_eps_upload_never_reaches_ghostscript(tmp_path, monkeypatch):
    # A stand-in `gs` on PATH leaves a mark if Pillow's EPS decoder runs it on the uploaded bytes.
    marker = tmp_path / "ghostscript-ran"
    fake_gs = tmp_path / "bin" / "gs"
    fake_gs.parent.mkdir()
    fake_gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_gs.chmod(fake_gs.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_gs.parent}{os.pathsep}{os.environ['PATH']}")
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)  # found again on the new PATH

    for source in (EPS, tmp_path / "digit.eps"):
        (tmp_path / "digit.eps").write_bytes(EPS)
        with pytest.raises(DataError, match=r"not a readable image \(not a picture in one of PNG, JPEG"):
            pictures.prepare_picture(source)
    assert not marker.exists()


@pytest.mark.parametrize("format_name", ["PPM", "PCX", "TGA", "ICO", "JPEG2000", "IM", "SGI"])
def test_formats_outside_the_promised_ones_are_refused(format_name):
    buffer = io.BytesIO()
    digit_picture(64).convert("RGB").save(buffer, format=format_name)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:  # Pillow itself reads each of them
        assert image.format == format_name
    with pytest.raises(DataError, match=r"not a readable image \(not a picture in one of PNG, JPEG"):
        pictures.prepare_picture(buffer.getvalue(), "upload")


@pytest.mark.parametrize("format_name", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_the_promised_formats_are_read(format_name):
    buffer = io.BytesIO()
    digit_picture(64).save(buffer, format=format_name)
    assert pictures.prepare_picture(buffer.getvalue()).max() == 255


def test_an_unreadable_upload_is_called_an_upload_not_a_file_object():
    with pytest.raises(DataError) as refusal:
        pictures.prepare_picture(b"not a picture" * 10)
    assert str(refusal.value).startswith("image: not a readable image (not a picture in one of PNG")
    assert " object at 0x" not in str(refusal.value)


@pytest.mark.timeout(30)
def test_a_fifo_named_as_a_picture_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"a pipe \(FIFO\), not a regular file"):
        pictures.prepare_picture(fifo)


@pytest.mark.parametrize("format_name", ["PNG", "JPEG"])
def test_a_large_picture_is_reduced_before_any_float_copy(format_name):
    side = 6000  # 36 megapixels: under the limit, 144 MB in each float32 copy of the whole picture
    buffer = io.BytesIO()
    digit_picture(side).save(buffer, format=format_name)
    with python_memory_peak() as peak:
        large = pictures.prepare_picture(buffer.getvalue())
    assert peak.megabytes < 40, f"{peak.megabytes:.0f} MB allocated: the picture was not reduced first"
    small = pictures.prepare_picture(_encoded(digit_picture(600), format_name))
    # The same drawing at a tenth of the size: the digit the model sees is nearly the same.
    assert np.abs(large.astype(int) - small.astype(int)).mean() < 8


def _encoded(image: Image.Image, format_name: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name)
    return buffer.getvalue()


def test_the_reduction_keeps_a_wide_mode_picture_readable():
    # 16-bit pictures reduce through Pillow's 32-bit integer mode: their values stay 16-bit ones.
    values = (np.asarray(digit_picture(3000), np.uint16) * 257).astype(np.uint16)
    image = Image.fromarray(values)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    gray = pictures.read_grayscale(buffer.getvalue())
    assert max(gray.shape) <= pictures.WORKING_SIDE and gray.dtype == np.float32
    assert gray.min() == 0.0 and gray.max() == 1.0


def test_pictures_prepared_at_once_from_threads_agree():
    # The server prepares pictures on several threads: one picture gives one answer.
    data = _encoded(digit_picture(2000), "JPEG")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(pictures.prepare_picture(data))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(np.array_equal(answers[0], answer) for answer in answers)
