"""The small synthetic CRM the orchestration tests run on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

# The salt comes from the environment, as in production; tests search every log for it.
PII_SALT = "salt-Secret-8b2e7a0c55"
SMALL_CRM = {
    "CRM_SYNTHETIC_CUSTOMERS": "2000",
    "CRM_SYNTHETIC_SEED": "8",
    "CRM_THREADS": "2",
    "CRM_PII_SALT": PII_SALT,
    # Not the churn capacity (500): the lead monitoring test tells which one leads are cut at.
    "CRM_LEAD_CAPACITY_TOP_K": "50",
}


def set_small_crm(env: pytest.MonkeyPatch, home: Path) -> None:
    """Point the settings (read from CRM_* variables, as in production) at a small CRM."""
    env.setenv("CRM_HOME", str(home))
    for name, value in SMALL_CRM.items():
        env.setenv(name, value)


def materialize_in_subprocess(
    home: Path, selection: str, *extra: str, instance: str = "dagster"
) -> subprocess.Popen[str]:
    """``dagster asset materialize`` of ``selection`` in its own process (and process group),
    as a run worker would run it, with its output (Dagster's event log) on ``stdout``.

    ``instance`` names the Dagster home under ``home``: processes started at the same moment
    need their own, or both create the same new SQLite run storage and one fails.
    """
    dagster_home = home / instance
    dagster_home.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "orchestration.definitions",
            "--select",
            selection,
            *extra,
        ],
        cwd=REPOSITORY,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
