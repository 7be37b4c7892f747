"""The raw checks after an append read the appended rows; after a whole load, every row."""

from __future__ import annotations

import dagster as dg
import duckdb

from ml.core.settings import Settings
from ml.data.manifest import appended_rows_table
from orchestration.defs.ingest.assets import raw_tables
from orchestration.defs.ingest.checks import raw_contract_checks
from orchestration.resources import CrmSettings


def _events_check(home: Settings) -> dg.AssetCheckEvaluation:
    # every file is unchanged: ingest reads nothing and leaves raw.* as planted below
    result = dg.materialize([raw_tables, raw_contract_checks], resources={"crm": CrmSettings()})
    assert result.success
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "events"
    ]
    return evaluation


def test_after_an_append_only_the_appended_rows_are_checked(home: Settings) -> None:
    with duckdb.connect(str(home.warehouse_path)) as con:
        # history whose keys repeat far beyond the suite's 1%: a check of every row fails
        con.execute(
            "insert into raw.events select * from raw.events using sample 10 percent (reservoir, 7)"
        )
        # what the last load appended: clean rows
        con.execute(
            f"create table {appended_rows_table('events')} as select * from raw.events "
            "where event_id in (select event_id from raw.events group by 1 having count(*) = 1) "
            "limit 500"
        )

    appended = _events_check(home)
    assert appended.passed
    assert appended.metadata["rows_checked"].value == "appended by the last load"

    with duckdb.connect(str(home.warehouse_path)) as con:
        con.execute(f"drop table {appended_rows_table('events')}")  # as after a whole load
    whole = _events_check(home)
    assert not whole.passed
    assert whole.metadata["rows_checked"].value == "every row"
