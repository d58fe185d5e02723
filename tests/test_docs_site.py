"""The documentation site's generated parts cover the code: every public name documents its
arguments and return value, every flag of every command is in the CLI reference, every method has
a page with its options, and the results pages show files that exist.

The generators (docgen/hooks.py, the mkdocs hook) are called directly; `make docs` builds the whole
site with --strict, in CI.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import prunelora

ROOT = Path(__file__).resolve().parents[1]


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docgen_hooks", ROOT / "docgen" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _section(doc: str, title: str) -> str | None:
    """The body of a Google-style section (`Args:`), up to the next section or the end."""
    match = re.search(rf"^{title}:\n(.*?)(?=^\S|\Z)", doc, flags=re.S | re.M)
    return match.group(1) if match else None


def _public_functions() -> list[str]:
    return [n for n in prunelora.__all__ if inspect.isfunction(getattr(prunelora, n))]


def _public_dataclasses() -> list[str]:
    return [n for n in prunelora.__all__ if dataclasses.is_dataclass(getattr(prunelora, n))]


def _missing_docs(fn) -> list[str]:
    """What the docstring of `fn` lacks: a summary, an `Args:` entry per parameter, `Returns:`."""
    doc = inspect.getdoc(fn) or ""
    if not doc.strip():
        return ["docstring"]
    problems = []
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    if params:
        args = _section(doc, "Args")
        if args is None:
            return ["Args:"]
        for p in params:
            stars = "**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else ""
            if not re.search(rf"^\s+{re.escape(stars + p.name)}( \([^)]*\))?:", args, flags=re.M):
                problems.append(f"Args: {stars}{p.name}")
    returns = inspect.signature(fn).return_annotation
    if returns not in (None, "None", inspect.Signature.empty) and _section(doc, "Returns") is None:
        problems.append("Returns:")
    return problems


@pytest.mark.parametrize("name", _public_functions())
def test_public_function_documents_its_arguments_and_return(name):
    assert _missing_docs(getattr(prunelora, name)) == [], name


@pytest.mark.parametrize("name", _public_dataclasses())
def test_public_dataclass_documents_its_fields(name):
    cls = getattr(prunelora, name)
    doc = inspect.getdoc(cls) or ""
    attributes = _section(doc, "Attributes") or _section(doc, "Args")
    assert attributes is not None, f"{name}: no Attributes: section"
    missing = [f.name for f in dataclasses.fields(cls) if not re.search(rf"^\s+{f.name}:", attributes, flags=re.M)]
    assert missing == [], name


def test_every_public_name_has_a_docstring():
    assert [n for n in prunelora.__all__ if not (inspect.getdoc(getattr(prunelora, n)) or "").strip()] == []


def test_the_docstring_check_catches_what_it_should():
    """The check itself: an undocumented argument and a missing Returns are found."""

    def half(x: int, y: int) -> int:
        """Half-documented.

        Args:
            x: documented.
        """
        return x + y

    assert _missing_docs(half) == ["Args: y", "Returns:"]


def test_cli_reference_lists_every_flag_of_every_command():
    from prunelora.cli.app import COMMANDS, build_parser

    text = hooks.cli_reference_markdown()
    _, subparsers = build_parser()
    assert set(subparsers) == set(COMMANDS)
    for name, sub in subparsers.items():
        assert f"## prunelora {name}" in text
        flags = [s for s in sub._option_string_actions if s not in ("-h", "--help")]
        missing = [f for f in flags if f"`{f}`" not in text]
        assert missing == [], (name, missing)
    assert "%(default)s" not in text  # help texts are expanded as --help prints them


@pytest.mark.parametrize("method", list(prunelora.list_methods()))
def test_method_page_shows_every_option_with_its_default_and_help(method):
    from prunelora.methods import get_method

    page = hooks.method_page_markdown(method)
    config_cls = get_method(method).config_cls
    assert prunelora.list_methods()[method] in page
    rows = {line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")}
    for field in dataclasses.fields(config_cls):
        assert field.name in rows, (method, field.name)
        row = rows[field.name]
        assert f"--{field.name.replace('_', '-')}" in row
        if field.default is not dataclasses.MISSING and not isinstance(field.default, tuple):
            assert f"`{field.default}`" in row, (method, field.name)
        assert field.metadata.get("help", "").replace("|", "\\|")[:40] in row


def test_every_registered_method_gets_a_page_in_the_navigation():
    config = {"nav": [{"Home": "index.md"}, {"Methods": []}]}
    nav = hooks.on_config(config)["nav"][1]["Methods"]
    assert nav[0] == {"Overview": "methods/index.md"}
    assert [next(iter(item.values())) for item in nav[1:]] == [f"methods/{m}.md" for m in prunelora.list_methods()]
    index = hooks.methods_index_markdown()
    assert all(f"[`{m}`]({m}.md)" in index for m in prunelora.list_methods())


def test_api_reference_renders_every_public_name():
    text = hooks.api_reference_markdown()
    for name in prunelora.__all__:
        assert re.search(rf"^::: prunelora\.[\w.]+\.{name}$", text, flags=re.M), name


def test_results_pages_show_committed_files_and_their_images_exist():
    for path, (title, relpath, command) in hooks.RESULTS_PAGES.items():
        page = hooks.results_page_markdown(title, relpath, command)
        assert page.startswith(f"# {title}\n")
        for image in re.findall(r"!\[[^\]]*\]\(\.\./([^)]+)\)", page):
            assert (ROOT / image).is_file(), (path, image)


def test_architecture_table_is_the_one_the_layer_test_enforces():
    test_layers = hooks._load_layers_test()
    text = hooks.architecture_layers_markdown()
    for units in test_layers.LAYERS:
        assert all(f"`{unit}`" in text for unit in units)
