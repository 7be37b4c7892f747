"""Ingest: every table of the source into DuckDB ``raw.*`` through its mapping, bad rows
quarantined, tables the source does not have loaded empty."""

from collections.abc import Iterator

import dagster as dg

from ml.core.warehouse import connect
from ml.data.contract import SOURCE_TABLES
from ml.data.ingest import ContractError
from ml.data.mapping import MappingError
from ml.data.sources import load_mappings, load_table
from ml.data.tombstones import read_tombstones
from orchestration.lib import keys
from orchestration.resources import CrmSettings


# Specs inline: a module-level list of specs would be loaded as assets of its own.
@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key=keys.raw(name),
            group_name="ingest",
            kinds={"duckdb"},
            deps=[keys.CRM_FILES],
            description=table.description,
        )
        for name, table in SOURCE_TABLES.items()
    ],
    can_subset=True,
    name="raw_tables",
)
def raw_tables(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> Iterator[dg.MaterializeResult]:
    """Load each table of the source through the folder's mapping (docs/bring-your-own-data.md).

    A table without a file is loaded empty (the models that need it are skipped and say so). A
    file that cannot be used at all (unreadable, a required column absent) leaves its last good
    ``raw`` table in place; the step fails after the other tables are loaded, naming the file
    and column, so nothing downstream runs on half the data.
    """
    settings = crm.get()
    try:
        mappings = load_mappings(settings.mapping_path)
    except MappingError as error:
        raise dg.Failure(description=f"The source's mapping cannot be used: {error}") from error
    # Rows of erased persons are dropped on load: a re-imported export never brings them back.
    tombstones = read_tombstones(settings.erasure_dir, settings.salt())
    unusable: list[str] = []
    with connect(
        settings.warehouse_path, threads=settings.threads, memory_limit=settings.duckdb_memory_limit
    ) as con:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.path[-1]):
            try:
                result = load_table(
                    con,
                    mappings[key.path[-1]],
                    settings.source_dir,
                    settings.quarantine_dir,
                    tombstones,
                    full_refresh=settings.full_refresh,
                )
            except (ContractError, MappingError) as error:
                context.log.error(str(error))
                unusable.append(str(error))
                continue
            for problem in result.problems:
                # An unchanged table (nothing read) is news, not a problem.
                noteworthy = result.has_file and result.mode != "unchanged"
                (context.log.warning if noteworthy else context.log.info)(problem)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "source_file": dg.MetadataValue.path(str(result.source_file)),
                    "has_file": result.has_file,
                    "rows_read": result.rows_read,
                    "dagster/row_count": result.rows_loaded,
                    "rows_quarantined": result.rows_quarantined,
                    "rows_of_erased_persons_dropped": result.rows_erased,
                    "ingest_mode": result.mode,
                    "files_unchanged_not_read": result.files_skipped,
                    "problems": dg.MetadataValue.md(
                        "\n".join(f"- {p}" for p in result.problems) or "none"
                    ),
                },
            )
    if unusable:
        raise dg.Failure(
            description="Unusable source files (last good tables kept):\n" + "\n".join(unusable)
        )
