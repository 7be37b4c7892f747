"""Test scheduling: tests that share an expensive session fixture run on the same xdist worker.

``make test`` runs ``pytest -n 2 --dist loadgroup``. A session fixture is built once per worker,
so the files of one folder below (a whole pipeline run, or a dbt build) are kept together; every
other file is a group of its own (as ``--dist loadfile`` would do), so module fixtures are built
once too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Folder -> group: each folder's session fixture (the default-CRM run, the small-CRM run, the
# dbt build of the fixtures) is built once instead of once per worker.
_SHARED_FIXTURE_FOLDERS = {
    "model": "default_crm_run",
    "orchestration": "small_crm_run",
    "data": "dbt_build",
}


# tryfirst: xdist's worker turns the markers into the "@group" node-id suffix its scheduler
# groups by, in its own collection hook, which otherwise runs before this one: the groups were
# then silently ignored and both workers built every session fixture.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        folder = Path(item.path).relative_to(tests_dir).parts[0]
        group = _SHARED_FIXTURE_FOLDERS.get(folder, str(Path(item.path).relative_to(tests_dir)))
        item.add_marker(pytest.mark.xdist_group(group))
