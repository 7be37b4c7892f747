"""Ingest: raw contract files into DuckDB ``raw.<table>``, bad rows quarantined."""

from collections.abc import Iterator

import dagster as dg

from ml.core.warehouse import connect
from ml.data.contract import RAW_TABLES
from ml.data.erasure import read_tombstones
from ml.data.ingest import ContractError, ingest_table
from orchestration.defs.source.assets import crm_source_files
from orchestration.resources import CrmSettings

RAW_TABLE_SPECS = [
    dg.AssetSpec(
        key=["raw", name],
        group_name="ingest",
        kinds={"duckdb"},
        deps=[crm_source_files],
        description=table.description,
    )
    for name, table in RAW_TABLES.items()
]


@dg.multi_asset(specs=RAW_TABLE_SPECS, can_subset=True, name="raw_tables")
def raw_tables(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> Iterator[dg.MaterializeResult]:
    """Load each contract file as it is; rows that break the contract go to quarantine.

    A file that cannot be used at all (missing, unreadable, a required column absent) leaves its
    last good ``raw`` table in place; the step fails after the other tables are loaded, naming
    the file and column, so nothing downstream runs on half the data.
    """
    settings = crm.get()
    # Rows of erased persons are dropped on load: a re-imported export never brings them back.
    tombstones = read_tombstones(settings.erasure_dir, settings.salt())
    unusable: list[str] = []
    with connect(
        settings.warehouse_path, threads=settings.threads, memory_limit=settings.duckdb_memory_limit
    ) as con:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.path[-1]):
            table = RAW_TABLES[key.path[-1]]
            try:
                result = ingest_table(
                    con, table, settings.source_dir, settings.quarantine_dir, tombstones
                )
            except ContractError as error:
                context.log.error(str(error))
                unusable.append(str(error))
                continue
            for problem in result.problems:
                context.log.warning(problem)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "source_file": dg.MetadataValue.path(str(result.source_file)),
                    "rows_read": result.rows_read,
                    "dagster/row_count": result.rows_loaded,
                    "rows_quarantined": result.rows_quarantined,
                    "rows_of_erased_persons_dropped": result.rows_erased,
                    "problems": dg.MetadataValue.md(
                        "\n".join(f"- {p}" for p in result.problems) or "none"
                    ),
                },
            )
    if unusable:
        raise dg.Failure(
            description="Unusable raw files (last good tables kept):\n" + "\n".join(unusable)
        )
