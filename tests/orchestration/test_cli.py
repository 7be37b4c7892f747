"""The `crm-signals run` command line: what it hands the job through the settings."""

from __future__ import annotations

import pytest

from ml.core.settings import Settings
from orchestration import cli, run


@pytest.mark.parametrize(("flags", "expected"), [([], False), (["--full-refresh"], True)])
def test_run_full_refresh_reaches_the_settings(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: bool
) -> None:
    # Registered first so the variable the command sets is undone after the test.
    monkeypatch.delenv("CRM_FULL_REFRESH", raising=False)
    seen: list[bool] = []

    def job(argv: list[str]) -> int:
        seen.append(Settings().full_refresh)
        return 0

    monkeypatch.setattr(run, "main", job)

    assert cli.main(["run", *flags]) == 0
    assert seen == [expected]
