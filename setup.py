"""Packaging: the repository root is the skill package itself."""
from os import walk
from os.path import dirname, join, relpath

from setuptools import setup

PKG = "ovos_skill_personal_backend"
SKILL_ID = "ovos-skill-personal-backend.openvoiceos"
HERE = dirname(__file__)


def package_files(*folders: str) -> list:
    """Every file under the given folders, relative to the package root."""
    found = []
    for folder in folders:
        for root, _, files in walk(join(HERE, folder)):
            found += [relpath(join(root, f), HERE) for f in files if not f.endswith(".pyc")]
    return found


def requirements() -> list:
    with open(join(HERE, "requirements.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="ovos-skill-personal-backend",
    version="0.1.0",
    description="A private, offline-first personal backend for OVOS / Mycroft devices, as a skill",
    long_description=open(join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    package_dir={PKG: "."},
    packages=[PKG, f"{PKG}.backend", f"{PKG}.backend.api", f"{PKG}.backend.services", f"{PKG}.device",
              f"{PKG}.backend.web"],
    # the data folders are data, not packages: every file is listed here, and
    # include_package_data stays off (with it on, setuptools takes MANIFEST.in's files as
    # package contents and warns that locale, templates... "would be ignored" as packages)
    package_data={PKG: package_files("locale", "backend/web/templates", "backend/web/static",
                                     "backend/data") + ["settingsmeta.yaml"]},
    include_package_data=False,
    install_requires=requirements(),
    entry_points={
        "opm.skill": [f"{SKILL_ID}={PKG}:PersonalBackendSkill"],
        "console_scripts": [f"ovos-personal-backend={PKG}.backend.cli:main"],
    },
)
