"""Test tiers and test scheduling, both decided by the folder a test lives in.

Tiers: every test in ``tests/<folder>/`` carries the mark ``<folder>`` (``ml``, ``data``,
``model``, ``orchestration``, ``hostile``, ``benchmarks``, ``ui``), so ``pytest -m model`` runs
``tests/model`` alone and ``pytest -m "ml or data"`` the fast tiers. A new folder must be
registered as a marker in ``pyproject.toml``; until it is, collection stops and says so
(tests/test_tiers.py holds the rule). Tests at the top of ``tests/`` belong to no tier: they
run with the whole suite.

Scheduling: ``make test`` runs ``pytest -n 2 --dist loadgroup``. A session fixture is built once
per worker, so the files of one folder below (a whole pipeline run, or a dbt build) are kept
together; every other file is a group of its own (as ``--dist loadfile`` would do), so module
fixtures are built once too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent

# Folder -> group: each folder's session fixture (the default-CRM run, the small-CRM run, the
# dbt build of the fixtures) is built once instead of once per worker.
_SHARED_FIXTURE_FOLDERS = {
    "model": "default_crm_run",
    "orchestration": "small_crm_run",
    "data": "dbt_build",
}


def tier_of(path: Path) -> str | None:
    """The tier of a test file: its folder below ``tests/``, or None at the top of ``tests/``."""
    parts = Path(path).relative_to(TESTS_DIR).parts
    return parts[0] if len(parts) > 1 else None


def _registered_markers(config: pytest.Config) -> set[str]:
    # Each entry of the ini option is "name: description" or "name(args): description".
    return {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}


# tryfirst: xdist's worker turns the markers into the "@group" node-id suffix its scheduler
# groups by, in its own collection hook, which otherwise runs before this one: the groups were
# then silently ignored and both workers built every session fixture. Running first also puts
# the tier marks on before `-m` deselects by them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    registered = _registered_markers(config)
    for item in items:
        relative = Path(item.path).relative_to(TESTS_DIR)
        tier = tier_of(Path(item.path))
        if tier is not None:
            if tier not in registered:
                raise pytest.UsageError(
                    f"tests/{tier}/ is a test tier without a mark: add "
                    f'"{tier}: <what its tests cover>" to [tool.pytest.ini_options] markers '
                    "in pyproject.toml"
                )
            item.add_marker(getattr(pytest.mark, tier))
        group = _SHARED_FIXTURE_FOLDERS.get(relative.parts[0], str(relative))
        item.add_marker(pytest.mark.xdist_group(group))
