"""The documents the code and README cite are in the repository, their citations resolve, and the
README's examples run (its Python quickstart, with tiny budgets; its command lines, parsed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import prunelora

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
INTERNAL_NOTES = "DESIGN" + ".md"  # spelled in two parts so that this file does not match itself


def _anchor(heading: str) -> str:
    """The anchor of a Markdown heading (GitHub's and mkdocs' toc alike for these headings):
    lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(page: Path) -> list[str]:
    in_code = False
    out = []
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.append(line.lstrip("#").strip())
    return out


def _sources() -> list[Path]:
    return [p for folder in ("src", "tests", "benchmarks", "examples") for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".txt", ".toml")]


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_no_source_cites_notes_users_do_not_have():
    citing = [str(p.relative_to(ROOT)) for p in _sources() if INTERNAL_NOTES in p.read_text(errors="replace")]
    assert citing == []


def test_citations_of_docs_pages_name_sections_they_have():
    cited = []
    for path in [*_sources(), README]:
        text = path.read_text(errors="replace")
        # docs/concepts/metrics.md ("Metrics") or docs/concepts/metrics.md, "Metrics"
        cited += [(path.name, page, name) for page, name in re.findall(r'(docs/[\w/\-]+\.md)[ ,(]{1,3}"([^"]+)"', text)]
    assert cited, "the metric code cites the Metrics page"
    for where, page, name in cited:
        assert (ROOT / page).is_file(), (where, page)
        assert name in _headings(ROOT / page), (where, page, name)


def test_readme_links_into_the_repository_resolve():
    links = re.findall(r"\]\((?!https?:)([^)#\s]+)(?:#([\w\-]+))?\)", README.read_text())
    assert links
    for target, anchor in links:
        assert (ROOT / target).exists(), target
        if anchor:
            assert anchor in {_anchor(h) for h in _headings(ROOT / target)}, (target, anchor)


def test_readme_is_short_and_shows_make_demo_and_make_test_first():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    first_block = _code_blocks(text, "bash")[0].splitlines()
    assert first_block[0].startswith("make demo") and first_block[1].startswith("make test")
    assert text.index("```bash") < text.index("## Install")


def _cli_lines(text: str) -> list[list[str]]:
    """Every `prunelora ...` command line of the text's bash blocks (continuations joined)."""
    out = []
    for block in _code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("prunelora ") and "|" not in line:
                out.append(shlex.split(line)[1:])
    return out


@pytest.mark.parametrize("page", [README, DOCS / "getting-started.md", DOCS / "guides" / "command-line.md"],
                         ids=lambda p: p.name)
def test_command_lines_shown_parse(page):
    """Each command line shown names a command and flags that exist, with values they accept."""
    from prunelora.cli.app import build_parser

    lines = _cli_lines(page.read_text())
    assert lines, page
    parser, _ = build_parser([line[0] for line in lines])
    for argv in lines:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse's error: an unknown command, flag or value
            raise AssertionError(f"{page.name}: prunelora {' '.join(argv)}") from exc


def test_readme_python_quickstart_runs(tmp_path, monkeypatch):
    """The README's Python quickstart, as shown but with one-epoch budgets (the code, not the figures)."""
    (quickstart,) = [b for b in _code_blocks(README.read_text(), "python") if "prunelora.train(" in b]
    fast = re.sub(r"epochs=\d+", "epochs=1", quickstart)
    assert fast != quickstart  # the budgets were found and cut
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(fast, "README quickstart", "exec"), namespace)
    assert (tmp_path / "runs" / "original" / "meta.json").is_file()
    assert "Avg.Gap" in namespace["metrics"]


def test_readme_python_names_exist():
    """Every `prunelora.NAME` the README's Python uses is public."""
    names = set()
    for block in _code_blocks(README.read_text(), "python"):
        names |= set(re.findall(r"\bprunelora\.(\w+)", block))
    assert names
    assert names <= set(prunelora.__all__), names - set(prunelora.__all__)


def test_python_examples_of_the_docs_pages_compile():
    """Every Python block of README and the site's hand-written pages is valid Python."""
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    blocks = [(page, block) for page in pages for block in _code_blocks(page.read_text(), "python")]
    assert len(blocks) >= 5
    for page, block in blocks:
        compile(block, str(page), "exec")


def _resolves(dotted: str) -> bool:
    """`prunelora.a.b.c` names a module, or an attribute of one, that exists."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_python_name_the_docs_mention_exists():
    """A function renamed or moved in the code fails here until the pages that name it follow."""
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    mentioned = {(page.name, name) for page in pages
                 for name in re.findall(r"\bprunelora(?:\.[A-Za-z_]\w*)+", page.read_text())}
    assert len(mentioned) > 10
    assert [m for m in sorted(mentioned) if not _resolves(m[1])] == []
