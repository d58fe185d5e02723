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

from prunelora.errors import (
    InvalidInputError,
    MissingFileError,
    did_you_mean,
    parse_text_file,
    shown,
)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped recipes (also ./configs in the repo)

# A recipe or benchmark is a few kilobytes; anything far larger is not one (and is not read whole).
MAX_YAML_BYTES = 1 << 20


def shipped_presets() -> list[str]:
    """The names of the shipped recipes (`configs/NAME.yaml`), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


UNLEARN, BENCH = "unlearn", "bench"  # the two kinds of shipped YAML


def config_kind(data: dict) -> str | None:
    """What a shipped YAML mapping is: `"bench"` (a benchmark config: it has `scenarios`),
    `"unlearn"` (an unlearning recipe, `unlearn --preset`: it names a `method`), or None."""
    if "scenarios" in data:
        return BENCH
    return UNLEARN if "method" in data else None


def shipped_configs(kind: str | None = None) -> dict[str, Path]:
    """The shipped YAML files by name (`configs/NAME.yaml`), sorted; only those of `kind` when given
    (`"unlearn"` or `"bench"`, see `config_kind`)."""
    found = {}
    for path in sorted(CONFIG_DIR.glob("*.yaml"), key=lambda p: p.stem):  # by name: `a` before `a-b`
        if kind is None or config_kind(read_yaml_mapping(path, "preset")) == kind:
            found[path.stem] = path
    return found


def _summary(path: Path) -> str:
    """A shipped file's first sentence: its leading comment up to the first ': ' or '. '."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    cut = min((i for i in (text.find(": "), text.find(". ")) if i >= 0), default=len(text))
    return text[:cut].rstrip(".:")


def list_presets() -> dict[str, dict]:
    """The shipped unlearning recipes (`prunelora unlearn --preset NAME`), benchmark configs aside.

    Returns:
        `{name: {"method", "epochs", "summary", "path"}}`, sorted by name; `epochs` is None where the
        recipe leaves the method's default.
    """
    out = {}
    for name, path in shipped_configs(UNLEARN).items():
        data = read_yaml_mapping(path, "preset")
        out[name] = {"method": data["method"], "epochs": data.get("epochs"), "summary": _summary(path),
                     "path": str(path)}
    return out


def preset_path(name: str, kind: str | None = None) -> Path:
    """A shipped YAML recipe by name (`configs/NAME.yaml`), of `kind` when given.

    Args:
        name: the file's name without `.yaml`.
        kind: `"unlearn"` (an unlearning recipe), `"bench"` (a benchmark config) or None (either).

    Raises:
        InvalidInputError: no such file, or one of the other kind (the message says where it belongs).
    """
    if not isinstance(name, str):  # only a shipped name reaches a file: never a path (`../../x`)
        raise InvalidInputError(f"unknown preset {shown(name)}; see `prunelora presets`")
    everything = shipped_configs()
    wanted = shipped_configs(kind) if kind is not None else everything
    if name in wanted:
        return wanted[name]
    if kind == UNLEARN and name in everything:
        raise InvalidInputError(
            f"{shown(name)} is a benchmark config, not an unlearning preset: run it with `prunelora bench --preset "
            f"{name} --out DIR`; unlearning presets: {', '.join(wanted)} (see `prunelora presets`)")
    if kind == BENCH and name in everything:
        raise InvalidInputError(
            f"{shown(name)} is an unlearning preset, not a benchmark config: use it with `prunelora unlearn --preset "
            f"{name}`; benchmark configs: {', '.join(wanted)}")
    what = {UNLEARN: "preset", BENCH: "benchmark config"}.get(kind, "preset")
    raise InvalidInputError(f"unknown {what} {shown(name)}{did_you_mean(name, wanted)}; accepted: {', '.join(wanted)}")


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


def method_preset(name: str, method: str | None = None) -> tuple[str, dict]:
    """A shipped unlearning recipe (`--preset NAME` of `prunelora unlearn`) for the Python API.

    Args:
        name: the preset's name (`configs/NAME.yaml`), e.g. `prunelora-digits-resnet`.
        method: the method the caller asked for; None takes the preset's.

    Returns:
        `(method, options)`: the method the preset is a recipe for and its options as config
        field names (`lora-rank` and `lora_rank` alike become `lora_rank`).

    Raises:
        InvalidInputError: an unknown preset, or one written for another method than `method`.
    """
    data = dict(read_yaml_mapping(preset_path(name), "preset"))
    recorded = data.pop("method", None)
    if method is not None and recorded is not None and recorded != method:
        raise InvalidInputError(f"preset {name!r} is a recipe for method {recorded!r}, not {method!r}; "
                                f"pass method={recorded!r} or leave method out")
    chosen = method or recorded
    if chosen is None:
        raise InvalidInputError(f"preset {name!r} names no method; pass method=")
    return chosen, {str(key).replace("-", "_"): value for key, value in data.items()}
