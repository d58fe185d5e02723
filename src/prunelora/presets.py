"""Shipped YAML recipes (`configs/NAME.yaml`) and the one strict reader of YAML.

Low in the house: the command line (`--config`, `--preset`, `--model-arg`) and the benchmark
(`BenchConfig`) read every YAML text through here. Only the standard library, PyYAML and
`prunelora.errors`.

The reader is strict where PyYAML is lenient: a key given twice in one mapping is an error, and
aliases (`*name`) are refused before anything is built. An alias makes a few hundred bytes stand
for gigabytes once expanded (the "billion laughs"); no prunelora file needs one, so refusing them
while the text is composed keeps every value read at most as large as its text.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from prunelora.errors import InvalidInputError, MissingFileError, parse_text_file, shown

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped recipes (also ./configs in the repo)

# A recipe or benchmark is a few kilobytes; anything far larger is not one (and is not read whole).
MAX_YAML_BYTES = 1 << 20


def shipped_presets() -> list[str]:
    """The names of the shipped recipes (`configs/NAME.yaml`), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """A shipped YAML recipe by name (`configs/NAME.yaml`); only those names are accepted, so a
    name never reaches a file outside configs/ (`../../x`, an absolute path)."""
    known = shipped_presets()
    if not isinstance(name, str) or name not in known:
        raise InvalidInputError(f"unknown preset {shown(name)}; accepted: {', '.join(known)}")
    return CONFIG_DIR / f"{name}.yaml"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    would silently keep the last) and an alias is refused where it appears (see the module)."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201  (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not accepted",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {shown(key)} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        except TypeError:  # an unhashable key: the safe constructor reports it
            pass
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"not valid YAML ({first[:200]})"


def _parse(text: str):
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader, stricter)
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build, e.g. an int of 10^5 digits
        raise yaml.YAMLError(f"a value cannot be read: {str(exc)[:100]}") from None


def load_yaml_text(text: str, name: str):
    """The value a YAML text holds, read strictly (no duplicate keys, no aliases); `name` starts
    the one line of `InvalidInputError` raised when it cannot be read (e.g. "--model-arg 'x=...'").
    """
    if len(text) > MAX_YAML_BYTES:
        raise InvalidInputError(f"{name} is larger than {MAX_YAML_BYTES:,} characters; not a prunelora YAML")
    try:
        return _parse(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{name} is {_yaml_problem(exc)}") from None
    except RecursionError:
        raise InvalidInputError(f"{name} is nested too deeply") from None


def read_yaml_mapping(path: str | os.PathLike, label: str) -> dict:
    """A YAML file holding a mapping (an empty file is an empty mapping); one clear line otherwise."""
    file = Path(path)
    name = f"{label} {str(path)!r}"
    if not file.is_file():
        raise MissingFileError(f"{name} does not exist")
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise MissingFileError(f"{name} cannot be read ({exc.strerror or exc})") from None
    if size > MAX_YAML_BYTES:
        raise InvalidInputError(f"{name} is {size:,} bytes, more than the {MAX_YAML_BYTES:,} a prunelora "
                                "YAML may hold")
    data = parse_text_file(file, lambda text: _parse(text) or {}, yaml.YAMLError, _yaml_problem,
                           InvalidInputError, name)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{name} must be a mapping of names to values")
    return data
