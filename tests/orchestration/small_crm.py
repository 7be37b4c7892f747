"""The small synthetic CRM the orchestration tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest

# The salt comes from the environment, as in production; tests search every log for it.
PII_SALT = "salt-Secret-8b2e7a0c55"
SMALL_CRM = {
    "CRM_SYNTHETIC_CUSTOMERS": "2000",
    "CRM_SYNTHETIC_SEED": "8",
    "CRM_THREADS": "2",
    "CRM_PII_SALT": PII_SALT,
}


def set_small_crm(env: pytest.MonkeyPatch, home: Path) -> None:
    """Point the settings (read from CRM_* variables, as in production) at a small CRM."""
    env.setenv("CRM_HOME", str(home))
    for name, value in SMALL_CRM.items():
        env.setenv(name, value)
