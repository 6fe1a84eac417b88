"""Config files in, a validated `RunConfig` out: YAML reading, --set overrides, bundled configs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mnist_zoo.config.run import RunConfig
from mnist_zoo.files import read_regular_file
from mnist_zoo.errors import ConfigError
from mnist_zoo.fields import did_you_mean
from mnist_zoo.models.registry import MODELS


SWEEPS_FOLDER = "sweeps"
"""The bundled sweep files' folder inside configs/: sweeps, not configs."""
LESSONS_FOLDER = "lessons"
"""The bundled lessons' folder inside configs/: lesson files, not configs."""


def bundled_config_dir() -> Path:
    """The folder of the configs shipped with the package (top-level configs/ in a checkout)."""
    package_dir = Path(__file__).resolve().parent.parent  # mnist_zoo/
    installed = package_dir / "configs"  # where pyproject.toml installs configs/
    return installed if installed.is_dir() else package_dir.parent / "configs"


def bundled_config_names() -> list[str]:
    """Names accepted by `--model`: bundled configs, e.g. 'cnn' or 'seeds/lab_cnn'."""
    root = bundled_config_dir()
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml")
                  if path.relative_to(root).parts[0] not in (SWEEPS_FOLDER, LESSONS_FOLDER))


def bundled_sweep_path(name: str) -> Path | None:
    """The bundled sweep file `name` ('mlp_quick', ...), or None if there is none of that name."""
    path = bundled_config_dir() / SWEEPS_FOLDER / f"{name}.yaml"
    return path if path.is_file() else None


def bundled_config_descriptions() -> list[tuple[str, str]]:
    """(name, description) of every bundled config, for `config list`."""
    return [(name, load_config(bundled_config_path(name)).description) for name in bundled_config_names()]


def bundled_config_path(name: str) -> Path:
    """The path of the bundled config `name` ('cnn', 'seeds/lab_cnn', ...)."""
    names = bundled_config_names()
    if not names:
        raise ConfigError(f"no bundled configs found in {bundled_config_dir()}; is mnist-zoo installed completely?")
    if name not in names:
        raise ConfigError(
            f"no bundled config named {name!r}{did_you_mean(name, names)}; "
            f"available: {', '.join(names)} (or pass --config PATH)"
        )
    return bundled_config_dir() / f"{name}.yaml"


MAX_CONFIG_BYTES = 1_000_000
"""Config and sweep files are a few kB; a larger file is refused before it is parsed, and none is
read past this many bytes: `--config /dev/zero`, or a file that grows while read, would otherwise
fill memory."""
MAX_CONFIG_VALUES = 100_000
"""Values a config may hold once YAML aliases are expanded: a few aliases can stand for billions."""
MAX_CONFIG_DEPTH = 64
"""Nesting levels a config may have."""


def safe_yaml(text: str, source: str):
    """Parses YAML with the safe loader, refusing what would expand past our limits.

    PyYAML shares an aliased node instead of copying it, so a 300-byte file of nested aliases
    loads at once and then takes hours for anything that walks it (validation, a deep copy).
    The size is counted on the parsed node graph, each node once, before anything is built.

    Raises:
        ConfigError: a syntax error, a disallowed tag, a node that refers to itself, more than
            MAX_CONFIG_VALUES values or MAX_CONFIG_DEPTH levels.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # it checks the characters at once: control characters raise here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, source)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as error:
        raise ConfigError(
            f"{source}: tag {error.problem.split()[-1] if error.problem else ''} is not allowed; "
            "configs are plain YAML (mappings, lists, numbers, strings) read with a safe loader"
        ) from None
    except yaml.reader.ReaderError as error:
        raise ConfigError(f"{source}: character #x{error.character:04x} at position {error.position} is not "
                          f"allowed in YAML ({error.reason}); configs are plain text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested more than {MAX_CONFIG_DEPTH} levels deep; configs are flat") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(root, source: str) -> None:
    """Counts the values `root` stands for with aliases expanded (each node's count computed once)."""
    counts: dict[int, int] = {}

    def count(node, depth: int, path: set) -> int:
        if id(node) in counts:
            return counts[id(node)]
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_CONFIG_DEPTH} levels deep; configs are flat")
        if id(node) in path:
            raise ConfigError(f"{source}: a YAML alias refers to a value that contains it; configs cannot be recursive")
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        path.add(id(node))
        total = 1 + sum(count(child, depth + 1, path) for child in children)
        path.discard(id(node))
        if total > MAX_CONFIG_VALUES:
            raise ConfigError(f"{source}: expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases); "
                              "a config holds a few dozen")
        counts[id(node)] = total
        return total

    count(root, 0, set())


def read_yaml(path: Path) -> dict:
    """Reads a YAML mapping with the safe loader, within the limits of `safe_yaml`.

    Raises:
        ConfigError: the file is missing, unreadable, not a regular file (a FIFO, a device), over
            MAX_CONFIG_BYTES, not YAML, over the limits, or not a mapping.
    """
    def too_large(size: int) -> ConfigError:
        return ConfigError(f"{path}: {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,} (they are a few kB)")

    try:
        text = read_regular_file(Path(path), MAX_CONFIG_BYTES, ConfigError, too_large).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    data = safe_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, received {type(data).__name__}")
    return data


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Parses `key.path=value` strings into {key path: value}, values read as YAML.

    Raises:
        ConfigError: an override is not of the form `key.path=value`.
    """
    parsed = {}
    for override in overrides:
        key_path, sep, raw_value = override.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key_path.strip()):
            raise ConfigError(
                f"--set {override!r}: expected KEY.PATH=VALUE, e.g. --set train.epochs=3"
            )
        try:
            parsed[key_path.strip()] = safe_yaml(raw_value, f"--set {key_path.strip()}") if raw_value.strip() else None
        except ConfigError as error:
            if "YAML syntax error" not in str(error):
                raise  # over a limit: refused, not taken as text
            parsed[key_path.strip()] = raw_value
    return parsed


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any]) -> dict:
    """Returns a copy of `data` with overrides applied.

    Args:
        data: the raw config mapping.
        overrides: `key.path=value` strings (values read as YAML), or {key path: value}
            with values used as they are.
    """
    data = copy.deepcopy(data)
    if not isinstance(overrides, dict):
        overrides = parse_overrides(overrides)
    for key_path, value in overrides.items():
        *parents, leaf = key_path.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if isinstance(child, str):  # a named spec's short form: `optimizer: adam`
                child = {"name": child}
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[leaf] = value
    return data


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (received X)`."""
    lines = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "literal_error":
            expected = re.findall(r"'([^']*)'", item["ctx"].get("expected", ""))
            message += did_you_mean(item["input"], expected)
        received = "" if item["type"] in ("value_error", "assertion_error") else f" (received {item['input']!r})"
        prefix = f"{location}: " if location else ""
        lines.append(f"{source}: {prefix}{message}{received}")
    return "\n".join(lines)


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and part in MODELS


def validate_config(data: dict, source: str) -> RunConfig:
    """Validates a raw mapping into a `RunConfig`.

    Raises:
        ConfigError: naming the source, the key path, what was received and what was expected.
    """
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def data_dir_setting(path: str | Path) -> str:
    """A data folder as a run records it (`data.data_dir`): absolute, `~` expanded, valid from any directory."""
    return str(Path(path).expanduser().resolve())


def load_config(path: str | Path, overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """Reads, overrides and validates a config file.

    Args:
        path: a YAML file.
        overrides: `key.path=value` strings, or {key path: value}, applied after reading.

    Returns:
        The validated, frozen `RunConfig`; `name` defaults to the file's stem.
    """
    data = read_yaml(Path(path))
    data.setdefault("name", Path(path).stem)
    return validate_config(apply_overrides(data, overrides), str(path))


def config_to_dict(config: RunConfig) -> dict:
    """The fully resolved config as plain data (what `config.yaml` in a run holds)."""
    return config.model_dump(mode="json")


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
