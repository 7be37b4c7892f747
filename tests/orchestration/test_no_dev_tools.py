"""The code location ships without the dev-only tools (selenium, pytest, ...): none is imported.

``make ui-check`` drives selenium from the test tooling (``tests/ui/ui_check.py``); a deployment
installs the project's dependencies only, so a module of ``orchestration/`` that imported a
dev-only package would fail there and nowhere here.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: every module of orchestration/ imported, and the definitions
# built, with the dev-only packages made unimportable, as in a deployment.
_IMPORT_WITHOUT = """
import importlib, pkgutil, sys

BLOCKED = set(sys.argv[1:])

class DevOnly:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is a dev-only package, missing from a deployment")
        return None

for name in list(sys.modules):
    if name.partition(".")[0] in BLOCKED:
        del sys.modules[name]
sys.meta_path.insert(0, DevOnly())
try:
    import selenium
except ImportError:
    pass
else:
    raise SystemExit("the dev-only packages were not blocked")

import orchestration
from orchestration.definitions import defs

for module in pkgutil.walk_packages(orchestration.__path__, "orchestration."):
    importlib.import_module(module.name)
defs()
print(len(list(pkgutil.walk_packages(orchestration.__path__))), "modules")
"""


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dev_only_modules() -> set[str]:
    """Top-level modules of the packages in the ``dev`` dependency group of pyproject.toml."""
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    dev = {
        _normalized(re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0])
        for requirement in pyproject["dependency-groups"]["dev"]
    }
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(_normalized(d) in dev for d in distributions)
    }


def test_dev_only_modules_are_known() -> None:
    assert {"selenium", "pytest", "fairlearn"} <= dev_only_modules()


def test_code_location_imports_without_dev_only_packages(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, *sorted(dev_only_modules())],
        cwd=PROJECT_DIR,
        env={**os.environ, "CRM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "modules" in done.stdout
