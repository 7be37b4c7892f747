"""The `crm-signals run` command line: what it hands the job through the settings."""

from __future__ import annotations

import pytest

from ml.core.settings import Settings
from orchestration import cli, run


@pytest.mark.parametrize(("flags", "expected"), [([], False), (["--full-refresh"], True)])
def test_run_full_refresh_reaches_the_settings(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: bool
) -> None:
    # Set through monkeypatch first, so the variable the command sets is undone after the test
    # (delenv of an unset variable records nothing: the command's "true" then leaked into every
    # later test of the worker, which all ran as full refreshes).
    monkeypatch.setenv("CRM_FULL_REFRESH", "false")
    seen: list[bool] = []

    def job(argv: list[str]) -> int:
        seen.append(Settings().full_refresh)
        return 0

    monkeypatch.setattr(run, "main", job)

    assert cli.main(["run", *flags]) == 0
    assert seen == [expected]
