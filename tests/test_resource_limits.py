"""Resource bombs: small inputs that would expand to gigabytes or hours get a one-line error within seconds."""

from __future__ import annotations

import struct
import time
import zlib
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ConfigError


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
])
def test_yaml_bombs_in_a_config_are_refused_at_once(tmp_path, text, message):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert time.monotonic() - start < 5
    assert result.exit_code == 2 and message in result.output
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
    start = time.monotonic()
    with pytest.raises(DataError) as raised:
        prepare_picture(picture)
    assert time.monotonic() - start < 2
    assert f"more than the {MAX_PIXELS:,} pixels accepted" in str(raised.value)
    assert str(raised.value).count("\n") == 0 and "scale the picture down" in str(raised.value)
