"""The device-side venv is what a current OpenVoiceOS device runs, and installing this skill there
changes no OVOS package.

Runs in `.venv-device` (test/requirements-device.txt + test/constraints-device.txt: ovos-core 2.1.x,
ovos-config 2.x, no ovos-backend-client). The main `.venv` holds ovos-backend-client, which pins
ovos-config<1: that is not a device, so this module skips itself there.
"""
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

import pytest

if importlib.util.find_spec("ovos_backend_client") is not None:
    pytest.skip("device-stack check: runs in .venv-device (ovos-config 2.x, no ovos-backend-client);"
                " this venv has ovos-backend-client, so it is not what a device runs",
                allow_module_level=True)

from packaging.utils import canonicalize_name  # noqa: E402
from packaging.version import Version  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SKILL = "ovos-skill-personal-backend"


def installed_versions() -> dict:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}


def is_ovos(name: str) -> bool:
    return canonicalize_name(name).startswith("ovos")


def dry_run_install(source: Path, tmp_path: Path) -> tuple:
    """`pip install --dry-run --report` of `source` into this very venv, offline.

    --no-index: pip may only keep what is installed, so the answer does not depend on the network
    or on what an index serves today; a requirement the installed stack does not meet makes the
    resolve fail (naming it) instead of planning an up/downgrade. --no-build-isolation: the
    metadata is built with this venv's setuptools, not one downloaded into a build env.
    --isolated: no user or site pip config (find-links, extra indexes) comes into play.
    Returns (returncode, pip's output, the report's `install` list).
    """
    report = tmp_path / "report.json"
    pip_tmp = tmp_path / "pip-tmp"  # pip's build and metadata folders land here, not in the repo
    pip_tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--report", str(report),
           "--isolated", "--no-index", "--no-build-isolation", "--no-cache-dir",
           "--disable-pip-version-check", "--quiet", str(source)]
    env = dict(os.environ, TMPDIR=str(pip_tmp))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    output = proc.stdout + proc.stderr
    install = json.loads(report.read_text())["install"] if proc.returncode == 0 else []
    return proc.returncode, output, install


def ovos_changes(install: list, installed: dict) -> list:
    """The report's entries that would up/downgrade an installed OVOS package (not this skill)."""
    changes = []
    for item in install:
        name = canonicalize_name(item["metadata"]["name"])
        new = item["metadata"]["version"]
        if is_ovos(name) and name != SKILL and name in installed and installed[name] != new:
            changes.append(f"{name} {installed[name]} -> {new}")
    return changes


def check_install_keeps_ovos(source: Path, tmp_path: Path) -> list:
    """Why installing `source` would not leave every installed OVOS package as it is; [] if it would."""
    rc, output, install = dry_run_install(source, tmp_path)
    if rc != 0:
        lines = [line for line in output.splitlines() if "ERROR" in line or "error" in line]
        return [f"pip cannot install it on the installed stack (rc {rc}): " + " | ".join(lines[-4:])]
    return ovos_changes(install, installed_versions())


def copy_source(dest: Path) -> Path:
    """The files pip needs to build this package, without venvs, builds or tests."""
    top_skip = {".git", "build", "dist", "test", "bench", ".pytest_cache", ".ruff_cache"}

    def ignore(folder, names):
        skip = {n for n in names if n in ("__pycache__",) or n.endswith(".egg-info")}
        if Path(folder).resolve() == REPO:
            skip |= {n for n in names if n in top_skip or n.startswith(".venv")}
        return skip

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def test_stack_is_a_current_device():
    assert Version(version("ovos-config")).major == 2, version("ovos-config")
    assert Version(version("ovos-core")).release[:2] == (2, 1), version("ovos-core")
    assert Version(version("ovos-workshop")) >= Version("7"), version("ovos-workshop")
    with pytest.raises(PackageNotFoundError):
        version("ovos-backend-client")
    assert importlib.util.find_spec("ovos_backend_client") is None
    for module in ("ovos_core", "ovos_config", "ovos_workshop", "ovoscope"):
        importlib.import_module(module)


def test_skill_is_installed_in_this_venv():
    # the package under test, not the source tree: a device installs it from a wheel
    import ovos_skill_personal_backend
    assert Path(ovos_skill_personal_backend.__file__).resolve().parent != REPO
    assert version(SKILL)


def test_installing_the_skill_changes_no_ovos_package(tmp_path):
    assert (REPO / "setup.py").is_file(), REPO
    problems = check_install_keeps_ovos(REPO, tmp_path)
    assert problems == [], "installing this skill on a current device would change its OVOS stack"


def test_the_check_catches_a_skill_that_needs_old_ovos_config(tmp_path):
    # the check above must be able to fail: a skill that still asks for ovos-config<2 (what
    # ovos-backend-client forces) cannot go onto a device without downgrading it
    source = copy_source(tmp_path / "src")
    reqs = source / "requirements.txt"
    lines = [line for line in reqs.read_text().splitlines()
             if not line.strip().lower().startswith(("ovos-config", "ovos_config"))]
    reqs.write_text("\n".join(lines + ["ovos-config>=0.4,<2", ""]))
    problems = check_install_keeps_ovos(source, tmp_path)
    assert problems and "ovos-config" in problems[0], problems


def test_report_comparison_flags_up_and_downgrades():
    # the report path (used when pip may consult an index) compares against the installed versions
    installed = {"ovos-config": "2.1.1", "ovos-workshop": "7.0.6", "flask": "3.1.3"}
    install = [{"metadata": {"name": "ovos_config", "version": "0.4.6"}},
               {"metadata": {"name": "ovos-workshop", "version": "7.0.6"}},
               {"metadata": {"name": "Flask", "version": "3.2.0"}},
               {"metadata": {"name": SKILL, "version": "0.2.0"}}]
    assert ovos_changes(install, installed) == ["ovos-config 2.1.1 -> 0.4.6"]
