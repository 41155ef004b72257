"""The tree stays linted, formatted and strictly typed: CI fails otherwise (not only the hook).

Runs the same tools a developer runs (ruff and mypy from the test extra), on the whole tree, so
line length and blank lines stop varying by author.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run("mypy")  # strict, packages = ["synthia_rt"] (pyproject.toml)
    assert result.returncode == 0, result.stdout + result.stderr
