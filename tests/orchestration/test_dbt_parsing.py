"""dbt parses the project once per state folder: the next build re-parses only what changed.

Every run used to parse the whole project (issue 15): dbt hashes ``--vars`` and the rendered
profile and throws its saved parse away when either differs, and dagster-dbt gave each invocation
a fresh target folder, so the state a build wrote was never read again. The test builds the seeds
twice through the project's own asset and resources and reads dbt's decision from its log.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ml.core.settings import Settings
from orchestration.defs.transform.assets import crm_dbt_models
from orchestration.resources import CrmSettings, dbt_cli

# The smallest build of the real project: the two seeds and their tests (one relates them), no
# raw tables needed.
SEEDS = [
    dg.AssetKey(["staging", "country_calling_codes"]),
    dg.AssetKey(["staging", "country_aliases"]),
]


def _invocations(target_dir: Path) -> list[list[dict]]:
    """dbt's JSON log events in ``target_dir``, one list per invocation, oldest first."""
    # dbt rotates dbt.log at 10 MB into dbt.log.1 (newest) ... dbt.log.5 (oldest).
    rotated = sorted(target_dir.glob("dbt.log.*"), key=lambda p: -int(p.suffix[1:]))
    by_invocation: dict[str, list[dict]] = {}
    for path in [*rotated, target_dir / "dbt.log"]:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                by_invocation.setdefault(event["info"]["invocation_id"], []).append(event)
    return list(by_invocation.values())


def test_second_dbt_build_in_a_state_folder_reuses_the_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the seeds' own tests: the relationship tests of staging models point at the seeds too.
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    home = tmp_path / "crm_home"
    resources = {"crm": CrmSettings(home=str(home)), "dbt": dbt_cli()}
    for _ in range(2):
        result = dg.materialize([crm_dbt_models], selection=SEEDS, resources=resources)
        assert result.success

    target_dir = Settings(home=home).dbt_target_dir
    assert (target_dir / "partial_parse.msgpack").is_file(), "no parse state kept in CRM_HOME"
    invocations = _invocations(target_dir)
    assert len(invocations) == 2
    second = invocations[-1]
    names = {event["info"]["name"] for event in second}
    # The parse decision and what dbt compared (StateCheckVarsHash shows the --vars it hashed).
    said = [
        event["info"]["msg"]
        for event in second
        if "Pars" in event["info"]["name"] or event["info"]["name"] == "StateCheckVarsHash"
    ]
    # I024 "Unable to do partial parsing because ..." names the cause (vars, profile, ...).
    assert "UnableToPartialParse" not in names, said
    # I017 "Partial parsing enabled, no changes found, skipping parsing".
    assert "PartialParsingSkipParsing" in names, said
