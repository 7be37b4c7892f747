"""Great Expectations gates on the raw contract tables."""

from collections.abc import Iterator

import dagster as dg

from expectations.runner import validate_frame
from expectations.suites import raw_suite
from ml.contract import RAW_TABLES
from ml.warehouse import connect, fetch_row, qualified
from orchestration.defs.checks_metadata import suite_metadata
from orchestration.resources import CrmSettings

RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        name="raw_contract_expectations",
        asset=["raw", name],
        description="Great Expectations suite derived from the raw contract: keys, required "
        "values, allowed values, ranges. Dirt that dbt cleans up is reported, not blocking.",
    )
    for name in RAW_TABLES
]

# GX validates pandas frames. Above this size a table is validated on a repeatable reservoir
# sample: null, value-set and range rates hold on a sample, memory stays bounded at 50M events,
# and the row-level problems are already quarantined by ingest and caught by dbt source tests.
SAMPLE_ROWS = 500_000


@dg.multi_asset_check(specs=RAW_CHECK_SPECS, can_subset=True)
def raw_contract_checks(
    context: dg.AssetCheckExecutionContext, crm: CrmSettings
) -> Iterator[dg.AssetCheckResult]:
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        for check_key in context.selected_asset_check_keys:
            table = RAW_TABLES[check_key.asset_key.path[-1]]
            raw_table = qualified("raw", table.name)
            (rows,) = fetch_row(con, f"select count(*) from {raw_table}")
            sample = f"using sample reservoir({SAMPLE_ROWS} rows) repeatable (42)"
            frame = con.sql(
                f"select * from {raw_table} {sample if rows > SAMPLE_ROWS else ''}"
            ).df()
            result = validate_frame(frame, raw_suite(table))
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=result.success,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={**suite_metadata(result), "rows": rows, "rows_validated": len(frame)},
            )
