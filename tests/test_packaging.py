"""The wheel installs one namespace, `icp_engine`, and ships every package in the repository."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("connectors", "scoring", "sync", "mappings")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_no_generic_top_level_name_is_installed() -> None:
    # Another distribution with a `sync` or `scoring` package must not break `icp`.
    packages = _setuptools()["packages"]
    assert packages and all(name.startswith("icp_engine.") for name in packages)


def test_every_package_folder_is_in_the_wheel() -> None:
    # A new subpackage left out of `packages` would import in a checkout but not once installed.
    found = {
        "icp_engine." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found == set(_setuptools()["packages"])
    assert _setuptools()["package-dir"] == {f"icp_engine.{top}": top for top in TOP}
