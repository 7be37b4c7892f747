"""Great Expectations gates on the raw contract tables."""

from collections.abc import Iterator

import dagster as dg

from expectations.sql import validate_table
from expectations.suites import raw_suite
from ml.core.warehouse import connect, fetch_row, qualified
from ml.data.contract import RAW_TABLES
from ml.data.manifest import appended_rows_table, last_load_appended
from orchestration.lib import keys
from orchestration.lib.metadata import suite_metadata
from orchestration.resources import CrmSettings


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name="raw_contract_expectations",
            asset=keys.raw(name),
            description="Great Expectations suite derived from the raw contract: keys, required "
            "values, allowed values, ranges. Dirt that dbt cleans up is reported, not blocking.",
        )
        for name in RAW_TABLES
    ],
    can_subset=True,
)
def raw_contract_checks(
    context: dg.AssetCheckExecutionContext, crm: CrmSettings
) -> Iterator[dg.AssetCheckResult]:
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        for check_key in context.selected_asset_check_keys:
            table = RAW_TABLES[check_key.asset_key.path[-1]]
            raw_table = qualified("raw", table.name)
            # After an append only the appended rows: the rest passed when they were loaded.
            # A key they repeat from earlier files is reported by ingest and by staging.
            appended = last_load_appended(con, table.name)
            checked = appended_rows_table(table.name) if appended else raw_table
            # The suite's rules in SQL over every row (expectations/sql.py): GX on pandas
            # needed a sample above 500k rows and still took 44-66 s per run at 100k-1M.
            result = validate_table(con, checked, raw_suite(table))
            (rows,) = fetch_row(con, f"select count(*) from {raw_table}")
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=result.success,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    **suite_metadata(result),
                    "rows": rows,
                    "rows_checked": "appended by the last load" if appended else "every row",
                },
            )
