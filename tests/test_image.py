"""The container image: the Dockerfile's shape (CI cannot build images) and the wheel it installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.deploy_support import ROOT, dockerfile_stages, exec_form

COMPILERS = ("build-essential", "gcc", "g++", "clang", "make", "-dev ")


def test_dockerfile_builds_wheels_then_runs_them_slim_and_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: builder, then runtime"
    builder, runtime = stages[0], stages[-1]
    build_runs = " ".join(builder.args("RUN"))
    assert "pip wheel . --no-deps -w /wheels" in build_runs  # what test_wheel_… builds too
    assert "slim" in runtime.base, runtime.base
    # Runtime: installs the builder's wheels offline, compiles nothing, fetches nothing.
    runtime_runs = " ".join(runtime.args("RUN"))
    assert f"from={builder.name}" in runtime_runs and "--no-index" in runtime_runs
    assert not any(word in runtime_runs + " " for word in COMPILERS), runtime_runs
    assert not any(copy.startswith(".") or " . " in f" {copy} " for copy in runtime.args("COPY"))
    users = runtime.args("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert exec_form(runtime.args("ENTRYPOINT")[-1]) == ["synthia-rt"]
    assert exec_form(runtime.args("CMD")[-1])[0] == "serve"


def test_healthcheck_probes_a_route_that_exists() -> None:
    from synthia_rt.rest.health import routes

    runtime = dockerfile_stages()[-1]
    (check,) = runtime.args("HEALTHCHECK")
    assert "/readyz" in check and "CMD" in check
    assert "/readyz" in {getattr(route, "path", "") for route in routes}


def test_oci_labels_and_version_match_the_project() -> None:
    runtime = dockerfile_stages()[-1]
    labels = " ".join(runtime.args("LABEL"))
    for key in ("title", "description", "version", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}" in (ROOT / "Dockerfile").read_text()


def test_dockerignore_keeps_secrets_and_checkouts_out_but_not_what_the_build_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".env", ".venv", ".synthia"} <= ignored
    copied = [
        word
        for stage in dockerfile_stages()
        for copy in stage.args("COPY")
        if not copy.startswith("--from")
        for word in copy.split()[:-1]
    ]
    assert copied and not set(copied) & ignored


def test_wheel_the_image_installs_contains_the_package_data(tmp_path: Path) -> None:
    # Build from the files git tracks (the image's context), not from this checkout's clutter.
    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    source = tmp_path / "src"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(out), "-q"],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("synthia_rt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = {
        name for name in listed if name.startswith(("synthia_rt/web/", "piccolo_migrations/"))
    }
    missing = sorted(name for name in tracked if not name.endswith(".pyc") and name not in names)
    assert not missing, missing
    assert "piccolo_conf.py" in names and any(
        n.startswith("piccolo_migrations/synthia_") for n in names
    )
    assert "synthia_rt/web/static/admin.js" in names and "synthia_rt/web/docs.html" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "synthia-rt = synthia_rt.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
