"""The package's metadata agrees with itself: the version in pyproject.toml is
rcfd.__version__, and the Python versions it declares are the ones the
Makefile and CI test (tools/find-python --supported)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import rcfd

ROOT = Path(__file__).resolve().parent.parent


def project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        table: dict[str, Any] = tomllib.load(f)["project"]
    return table


def supported() -> list[str]:
    out = subprocess.run(
        ["sh", str(ROOT / "tools" / "find-python"), "--supported"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return out.split()


def test_version_is_the_pyprojects() -> None:
    assert rcfd.__version__ == project()["version"]


def test_classifiers_name_the_supported_pythons() -> None:
    versions = [
        m.group(1)
        for c in project()["classifiers"]
        if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
    ]
    assert versions == supported()
    assert project()["requires-python"] == f">={supported()[0]}"


def test_license_is_a_pep_639_expression() -> None:
    meta = project()
    assert meta["license"] == "ISC"
    assert meta["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").is_file()
    # PEP 639: the expression replaces license classifiers (setuptools warns on both).
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]


def test_the_exploration_that_verify_runs_apart_exists() -> None:
    # verify runs the interleaving exploration as a check of its own and deselects
    # it from its unit tests; the Makefile deselects it from `make quick`. A renamed
    # test would silently run twice in verify (or slow quick down): fail instead.
    from tools.verify import EXPLORATION

    path, name = EXPLORATION.split("::")
    assert f"\ndef {name}(" in (ROOT / path).read_text()
    assert f"EXPLORATION := {EXPLORATION}\n" in (ROOT / "Makefile").read_text()
