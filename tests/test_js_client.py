"""The JavaScript client package (clients/js) is tested by its own suite, run from here so the
repository's one test command covers it: `npm ci` then `npm test` (node --test against real
uvicorn nodes started with this interpreter; type generation drift, the committed browser bundle,
`npm pack` + install + import, and `tsc --strict` on a consumer). Nothing is skipped: without
npm the test fails and says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clients" / "js"


def _npm() -> str:
    npm = shutil.which("npm")
    node = shutil.which("node")
    assert npm and node, (
        "tests/test_js_client.py needs Node >= 20 and npm on PATH (e.g. apt-get install -y nodejs npm): "
        "it runs the clients/js test suite"
    )
    return npm


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(PACKAGE.parent.parent)}
    return subprocess.run(
        args, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(600)
def test_js_client_package_suite() -> None:
    npm = _npm()
    assert (PACKAGE / "package-lock.json").exists(), (
        "clients/js/package-lock.json must be committed (npm ci)"
    )
    installed = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=300)
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    result = _run([npm, "test"], timeout=540)
    output = f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    assert result.returncode == 0, f"npm test failed:\n{output}"
    assert "# fail 0" in result.stdout, output
    assert "# skipped 0" in result.stdout and "# todo 0" in result.stdout, output
