"""The tier marks of tests/conftest.py: ``pytest -m <tier>`` selects exactly ``tests/<tier>``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_DIR = TESTS_DIR.parent

# Collects the whole suite in a child pytest and writes the marks of every test it collected.
_REPORT_PLUGIN = """
import json, os

def pytest_collection_finish(session):
    marks = {item.nodeid: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    with open(os.environ["TIER_REPORT"], "w") as out:
        json.dump(marks, out)
"""


def _test_folders() -> set[str]:
    """Folders directly below tests/ that hold test files (at any depth)."""
    return {
        path.relative_to(TESTS_DIR).parts[0]
        for path in TESTS_DIR.glob("*/**/test_*.py")
        if "__pycache__" not in path.parts
    }


def _registered_markers() -> set[str]:
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    lines = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":")[0].split("(")[0].strip() for line in lines}


@pytest.fixture(scope="module")
def collected_marks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Node id -> mark names of every test of the suite, as `pytest` collects it (about 15 s)."""
    plugin_dir = tmp_path_factory.mktemp("tier_report")
    (plugin_dir / "tier_report.py").write_text(_REPORT_PLUGIN)
    report = plugin_dir / "marks.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tier_report"],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "PYTHONPATH": str(plugin_dir),
            "TIER_REPORT": str(report),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    marks: dict[str, list[str]] = json.loads(report.read_text())
    return marks


def test_every_test_folder_is_a_registered_tier() -> None:
    folders = _test_folders()
    assert {"ml", "data", "model", "orchestration"} <= folders
    unregistered = folders - _registered_markers()
    assert not unregistered, f"test folders without a marker in pyproject.toml: {unregistered}"


def test_each_tier_selects_exactly_its_folder(collected_marks: dict[str, list[str]]) -> None:
    tiers = _test_folders()
    selected: dict[str, set[str]] = {tier: set() for tier in tiers}
    for nodeid, marks in collected_marks.items():
        for tier in tiers & set(marks):
            # `pytest -m <tier>` selects a test exactly when it carries the mark <tier>.
            selected[tier].add(nodeid)
    by_folder: dict[str, set[str]] = {tier: set() for tier in tiers}
    top_level = set()
    for nodeid in collected_marks:
        parts = Path(nodeid.split("::")[0]).parts
        assert parts[0] == "tests", nodeid
        if len(parts) > 2:
            by_folder[parts[1]].add(nodeid)
        else:
            top_level.add(nodeid)
    for tier in sorted(tiers):
        assert by_folder[tier], f"tests/{tier}/ collected no tests"
        assert selected[tier] == by_folder[tier], (
            f"-m {tier} selects {sorted(selected[tier] - by_folder[tier])[:5]} "
            f"and misses {sorted(by_folder[tier] - selected[tier])[:5]}"
        )
    # Tests at the top of tests/ (this file) run only with the whole suite.
    assert top_level
    assert all(not tiers & set(collected_marks[nodeid]) for nodeid in top_level)
