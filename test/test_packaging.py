"""The installed package holds what the skill and the server read at run time.

scripts/test.sh installs the package from a wheel, not in editable mode, so these tests check
the packaging: every dialog, intent, template, static file and data file of the repository is
installed, and no module that the repository no longer has (a stale build/ would add one).
"""
from pathlib import Path

import pytest

import ovos_skill_personal_backend

REPO = Path(__file__).resolve().parents[1]
DATA_FOLDERS = ("locale", "backend/web/templates", "backend/web/static", "backend/data")
DATA_FILES = ("settingsmeta.yaml",)
STALE = "the installed package differs from the repository: reinstall it (bash scripts/test.sh)"


@pytest.fixture(scope="module")
def installed() -> Path:
    path = Path(ovos_skill_personal_backend.__file__).resolve().parent
    if path == REPO:
        pytest.skip("the package is imported from the repository, not installed")
    return path


def files_under(root: Path, folder: str) -> set:
    return {str(p.relative_to(root)) for p in (root / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_installed_package_has_every_data_file(installed):
    expected = set(DATA_FILES).union(*(files_under(REPO, f) for f in DATA_FOLDERS))
    assert {"backend/data/gazetteer.tsv.gz", "locale/en-us/skill.json"} <= expected
    assert any(f.startswith("backend/web/templates/web/") for f in expected)
    assert any(f.startswith("backend/web/static/") for f in expected)
    missing = sorted(f for f in expected if not (installed / f).is_file())
    assert not missing, f"not installed: {missing}; {STALE}"


def test_installed_package_has_no_module_the_repository_lacks(installed):
    modules = {str(p.relative_to(installed)) for p in installed.rglob("*.py")}
    assert "skill.py" in modules and "backend/server.py" in modules
    extra = sorted(m for m in modules if not (REPO / m).is_file())
    assert not extra, f"installed but not in the repository: {extra}; {STALE}"
