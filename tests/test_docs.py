"""The documents the code and README cite are in the repository, and their citations resolve."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
INTERNAL_NOTES = "DESIGN" + ".md"  # spelled in two parts so that this file does not match itself


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings() -> list[str]:
    return [line.lstrip("#").strip() for line in DESIGN.read_text().splitlines() if line.startswith("#")]


def _sources() -> list[Path]:
    return [p for folder in ("src", "tests", "benchmarks", "examples") for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".txt", ".toml")]


def test_no_source_cites_notes_users_do_not_have():
    citing = [str(p.relative_to(ROOT)) for p in _sources() if INTERNAL_NOTES in p.read_text(errors="replace")]
    assert citing == []


def test_citations_of_docs_design_name_sections_it_has():
    headings = _headings()
    assert {"Metrics", "The paper's recipe", "Where we differ from the paper's reference code"} <= set(headings)
    cited = []
    for path in [*_sources(), ROOT / "README.md"]:
        text = path.read_text(errors="replace")
        # docs/design.md ("Metrics") or docs/design.md, "Metrics"
        cited += [(path.name, name) for name in re.findall(r'docs/design\.md[ ,(]{1,3}"([^"]+)"', text)]
    assert cited, "the metric code cites docs/design.md"
    for where, name in cited:
        assert name in headings, (where, name)


def test_readme_links_into_docs_design_resolve():
    anchors = {_anchor(h) for h in _headings()}
    links = re.findall(r"docs/design\.md#([\w\-]+)", (ROOT / "README.md").read_text())
    assert links
    for link in links:
        assert link in anchors, link
