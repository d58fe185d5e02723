"""Pages of the documentation site generated at build time, so that they cannot drift from the code.

mkdocs loads this file as a hook module (`hooks:` in mkdocs.yml); the functions that write Markdown
are plain functions of the code, and tests/test_docs_site.py calls them directly:

- `cli_reference_markdown()`: every subcommand's flags, read from the argparse parser the
  `prunelora` command itself builds;
- `method_page_markdown(name)` / `methods_index_markdown()`: one page per registered method, its
  option table read from its config dataclass (`metadata["help"]`, defaults, choices), the list of
  methods from `prunelora.list_methods()` (a method registered later gets its page by itself);
- `api_reference_markdown()`: one mkdocstrings entry per name in `prunelora.__all__`;
- `architecture_layers_markdown()`: the import layers as tests/test_layers.py enforces them;
- `results_page_markdown(...)`: a committed results file, its headings and image links adjusted.

Nothing here downloads anything: the site builds offline.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# The results pages: site path -> (title, the committed file under benchmarks/results/, the command that wrote it).
RESULTS_PAGES: dict[str, tuple[str, str, str]] = {
    "results/fashion-mnist-resnet8.md": (
        "Fashion-MNIST, ResNet-8: the full report", "fashion-mnist-resnet8/report.md",
        "bash benchmarks/run_fashion_mnist.sh"),
    "results/fashion-mnist-vit-tiny.md": (
        "Fashion-MNIST, ViT: the full report", "fashion-mnist-vit-tiny/report.md",
        "bash benchmarks/run_fashion_mnist.sh"),
    "results/targets.md": (
        "Fashion-MNIST: the targets, held or missed", "fashion-mnist-summary.md",
        "python benchmarks/fashion_mnist_summary.py (run by benchmarks/run_fashion_mnist.sh)"),
    "results/forget-aware-sweep-table.md": (
        "Forget-aware sweep: the table", "forget-aware/sweep.md",
        "python benchmarks/forget_aware_sweep.py (see the forget-aware sweep page for the three runs)"),
    "results/deep-forgetting-sweep-table.md": (
        "Deep-forgetting sweep: the table", "deep-forgetting/summary.md",
        "python benchmarks/deep_forgetting_sweep.py --summarize benchmarks/results/deep-forgetting (every round's "
        "sweep.csv; the rounds' commands are on the deep-forgetting sweep page)"),
}


def _source_path() -> None:
    """Import prunelora from this checkout's src/, whatever is installed."""
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def _cell(text: object) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return str(text).replace("\n", " ").replace("|", "\\|")


# --------------------------------------------------------------------------- CLI reference


def _flag_default(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS) or action.nargs == 0 and action.default is False:
        return ""
    return f"`{action.default}`"


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as `--help` prints it (`%(default)s` filled in)."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return parser._get_formatter()._expand_help(action)


def _flags_of(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
    else:
        names = f"`{action.metavar or action.dest}`"
    if action.nargs != 0 and action.option_strings:
        metavar = action.metavar or (
            "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper())
        names += f" `{metavar}`"
    return names


def cli_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of `parser` (the help flag left out)."""
    return [s for a in parser._actions if not isinstance(a, argparse._HelpAction) for s in a.option_strings]


def cli_reference_markdown() -> str:
    """The CLI reference: every subcommand, its usage, and a table of its arguments per group.

    Returns:
        Markdown read from `prunelora.cli.app.build_parser()`, the parser `prunelora` runs.
    """
    _source_path()
    from prunelora.cli.app import COMMANDS, build_parser

    parser, subparsers = build_parser()
    out = ["# Command-line reference", "",
           "Generated from the argument parser of the `prunelora` command when this site was built, "
           "so every flag here exists and every flag that exists is here. `prunelora COMMAND --help` "
           "prints the same. Every command also takes `--config FILE.yaml`, whose keys mirror its long "
           "options; flags on the command line override the file.", "",
           "| command | what it does |", "|---|---|"]
    out += [f"| [`{name}`](#prunelora-{name}) | {_cell(text)} |" for name, text in COMMANDS.items()]
    for name, sub in subparsers.items():
        usage = sub.format_usage().replace("usage: ", "").strip()
        out += ["", f"## prunelora {name}", "", _cell(COMMANDS[name]), "", "```text", usage, "```"]
        for group in sub._action_groups:
            actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
            if not actions:
                continue
            out += ["", f"**{group.title}**", "", "| argument | default | help |", "|---|---|---|"]
            for action in actions:
                out.append(f"| {_cell(_flags_of(action))} | {_cell(_flag_default(action))} | "
                           f"{_cell(_expanded_help(sub, action))} |")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- method pages


def _type_name(annotation: object) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "")


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
    else:
        return "required"
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f"`{value}`"


def _flag_text(field: dataclasses.Field, annotation: object) -> str:
    flag = "--" + field.name.replace("_", "-")
    if annotation is bool or annotation == "bool":
        return f"`{flag}` / `--no-{flag[2:]}`" if field.default is not False else f"`{flag}`"
    return f"`{flag}`"


def method_options_table(config_cls: type) -> str:
    """The option table of a method's config dataclass: flag, Python name, type, default, help.

    Args:
        config_cls: the method's config dataclass (derived from `MethodConfig`).

    Returns:
        A Markdown table, one row per field, in field order.
    """
    hints = typing.get_type_hints(config_cls)
    rows = ["| option (Python) | flag | type | default | help |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(config_cls):
        text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
        rows.append(f"| `{f.name}` | {_flag_text(f, hints[f.name])} | `{_cell(_type_name(hints[f.name]))}` "
                    f"| {_cell(_default_text(f))} | {_cell(text)} |")
    return "\n".join(rows)


def _doc(obj: object) -> str:
    import inspect

    return inspect.cleandoc(obj.__doc__ or "")


def method_page_markdown(name: str) -> str:
    """One method's page: what it does and its paper (its module's docstring), its declared
    capabilities, and its options.

    Args:
        name: a registered method name (see `prunelora.list_methods()`).

    Returns:
        The page's Markdown.
    """
    _source_path()
    from prunelora.methods import get_method

    method = get_method(name)
    module = sys.modules[method.run.__module__]
    caps = dataclasses.asdict(method.capabilities)
    cap_rows = "\n".join(f"| `{k}` | {'yes' if v else 'no'} |" for k, v in caps.items())
    return "\n".join([
        f"# `{name}`", "", f"*{_cell(method.summary)}*", "",
        "## What it does", "", _doc(module), "",
        f"Config class: `{method.config_cls.__module__}.{method.config_cls.__name__}`. "
        + _doc(method.config_cls).replace("\n", " "), "",
        "## Use it", "", "```bash",
        f"prunelora unlearn --checkpoint runs/original --forget-class 3 --method {name} --out runs/{name}",
        "```", "", "```python",
        f'result = prunelora.unlearn(model, splits, "{name}", seed=0)   # options as keyword arguments',
        "```", "",
        *(["It trains a fresh model: in Python give it the original's recipe, `original_meta=meta` "
           "(a checkpoint's meta.json) or `model_factory=` and `recipe=` (a `TrainConfig`).", ""]
          if method.capabilities.from_scratch else []),
        "## Capabilities", "", "Declared where the method is registered.", "",
        "| capability | |", "|---|---|", cap_rows, "",
        "## Options", "",
        "Generated from the config dataclass: the command-line flag, the keyword of "
        "`prunelora.unlearn(...)` and the key of a `--config` or bench file are the same option.", "",
        method_options_table(method.config_cls), "",
    ])


def method_names() -> list[str]:
    """The registered methods, in `prunelora.list_methods()` order."""
    _source_path()
    import prunelora

    return list(prunelora.list_methods())


def methods_index_markdown() -> str:
    """The methods overview: one row per registered method with its one-line summary and page."""
    _source_path()
    import prunelora

    rows = [f"| [`{name}`]({name}.md) | {_cell(summary)} |" for name, summary in prunelora.list_methods().items()]
    return "\n".join([
        "# Methods", "",
        "Every method registered in `prunelora.methods` (the list is read from `prunelora.list_methods()` "
        "when the site is built; `prunelora methods` prints the same). Each page shows what the method "
        "does, the paper it comes from and every option with its default. Which one to choose: "
        "[Choosing a method](../guides/choosing-a-method.md). How to add one: "
        "[Architecture](../architecture.md#adding-a-method).", "",
        "| method | summary |", "|---|---|", *rows, ""])


# --------------------------------------------------------------------------- API reference


def api_reference_markdown() -> str:
    """The API reference: one mkdocstrings block per name in `prunelora.__all__`.

    Returns:
        Markdown whose `::: module.name` lines mkdocstrings renders from the docstrings.
    """
    _source_path()
    import prunelora

    lazy = getattr(prunelora, "_LAZY", {})  # name -> (module, attribute), when the package loads lazily
    out = ["# Python API reference", "",
           "Every public name of `prunelora` (its `__all__`), rendered from the docstrings when this "
           "site was built. `import prunelora` is cheap: each name is imported on first use.", ""]
    for name in sorted(prunelora.__all__, key=str.lower):
        module = lazy[name][0] if name in lazy else getattr(prunelora, name).__module__
        out += [f"::: {module}.{name}", "    options:", "      show_root_heading: true",
                "      show_root_full_path: false", "      heading_level: 2", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- architecture


def _load_layers_test():
    spec = importlib.util.spec_from_file_location("_layers_test", ROOT / "tests" / "test_layers.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def architecture_layers_markdown() -> str:
    """The import layers, lowest first, and the allowed function-local imports, as
    tests/test_layers.py enforces them."""
    _source_path()
    layers = _load_layers_test()
    rows = ["| layer (lowest first) | units (siblings never import each other) |", "|---|---|"]
    rows += [f"| {i} | {', '.join(f'`{u}`' for u in units)} |" for i, units in enumerate(layers.LAYERS)]
    local = ["| module | may import inside a function | why |", "|---|---|---|"]
    local += [f"| `{a}` | `{b}` | {_cell(why)} |" for (a, b), why in layers.LOCAL_IMPORTS.items()]
    return "\n".join(rows) + "\n\nFunction-local imports allowed, each with its reason:\n\n" + "\n".join(local) + "\n"


# --------------------------------------------------------------------------- results


def results_page_markdown(title: str, relpath: str, command: str) -> str:
    """A committed results file as a page: its H1 replaced by `title`, its other headings kept
    one level below, its image links pointed at the copies the site serves.

    Args:
        title: the page's title.
        relpath: the file's path under benchmarks/results/.
        command: the command that wrote it.

    Returns:
        The page's Markdown.
    """
    path = RESULTS / relpath
    folder = Path(relpath).parent
    body = path.read_text()
    body = re.sub(r"\A# .*\n", "", body)
    # images are served from benchmarks/results/... at the site's root (see on_files)
    body = re.sub(r"!\[([^\]]*)\]\((?!https?:)([^)]+)\)",
                  lambda m: f"![{m.group(1)}](../benchmarks/results/{(folder / m.group(2)).as_posix()})", body)
    return "\n".join([f"# {title}", "",
                      f"This page is the committed file `benchmarks/results/{relpath}`, as written by "
                      f"`{command}`; nothing in it is typed by hand.", "", body])


# --------------------------------------------------------------------------- mkdocs hooks


def on_config(config):
    """Fill the Methods section of the navigation from the method registry."""

    def fill(items):
        for item in items:
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == "Methods" and isinstance(value, list):
                        item[key] = [{"Overview": "methods/index.md"}, *[{n: f"methods/{n}.md"} for n in method_names()]]
                    elif isinstance(value, list):
                        fill(value)

    fill(config["nav"] or [])
    return config


def on_files(files, config):
    """Add the generated pages, and the committed result plots the pages show."""
    from mkdocs.structure.files import File

    generated = {
        "reference/cli.md": cli_reference_markdown(),
        "reference/api.md": api_reference_markdown(),
        "methods/index.md": methods_index_markdown(),
        **{f"methods/{n}.md": method_page_markdown(n) for n in method_names()},
        **{path: results_page_markdown(*spec) for path, spec in RESULTS_PAGES.items()},
    }
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    for image in sorted(RESULTS.rglob("*.png")):
        if "cache" in image.parts:
            continue
        rel = image.relative_to(ROOT).as_posix()
        files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Expand `<!-- generated: architecture-layers -->` into the layer table."""
    marker = "<!-- generated: architecture-layers -->"
    return markdown.replace(marker, architecture_layers_markdown()) if marker in markdown else markdown
