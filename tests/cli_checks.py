"""Checks shared by the CLI test modules (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import yaml


def one_error_line(result, command: str) -> str:
    """`result` of run_cli is a refusal: exit 2, one line on stderr naming the command, no traceback."""
    code, _, stderr = result
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    assert lines[0].startswith(f"prunelora {command}: error:")
    return lines[0]


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
