"""Ingest: raw contract files and the lead export into DuckDB ``raw.*``, bad rows quarantined."""

from collections.abc import Iterator

import dagster as dg

from ml.core.warehouse import connect
from ml.data.contract import LEADS_TABLE, RAW_TABLES
from ml.data.ingest import ContractError, ingest_table, load_empty_table
from ml.data.lead_mapping import MappingError, load_leads, load_mapping
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
        for name, table in RAW_TABLES.items()
    ],
    can_subset=True,
    name="raw_tables",
)
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


_EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dg.asset(key=keys.raw("leads"), group_name="ingest", kinds={"duckdb"}, deps=[keys.CRM_FILES])
def raw_leads(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """The lead export (`<source>/leads.csv`) loaded through its YAML column mapping.

    Mapped columns get contract names and types, every other kept column becomes a typed
    attribute `attr_<name>`, rows that break the contract are quarantined with their reason.
    Without a lead export the table is empty and no lead model is trained.
    """
    settings = crm.get()
    found = [settings.source_dir / f"leads{s}" for s in _EXPORT_SUFFIXES]
    export = next((p for p in found if p.is_file()), None)
    with connect(
        settings.warehouse_path, threads=settings.threads, memory_limit=settings.duckdb_memory_limit
    ) as con:
        if export is None:
            result = load_empty_table(
                con, LEADS_TABLE, settings.source_dir, settings.quarantine_dir
            )
            context.log.info(result.problems[0])
            return dg.MaterializeResult(metadata={"dagster/row_count": 0, "export": "none"})
        if not settings.leads_mapping_path.is_file():
            raise dg.Failure(
                description=f"{export.name}: no column mapping at {settings.leads_mapping_path} "
                "(write one as in docs/lead-scoring.md, or set CRM_LEADS_MAPPING); "
                "last good leads kept"
            )
        try:
            mapping = load_mapping(settings.leads_mapping_path)
            loaded = load_leads(con, export, mapping, settings.quarantine_dir)
        except (MappingError, ContractError) as error:
            raise dg.Failure(
                description=f"Lead export not loaded (last good kept): {error}"
            ) from error
    for problem in loaded.problems:
        context.log.warning(problem)
    return dg.MaterializeResult(
        metadata={
            "export": dg.MetadataValue.path(str(export)),
            "mapping": dg.MetadataValue.path(str(settings.leads_mapping_path)),
            "rows_read": loaded.rows_read,
            "dagster/row_count": loaded.rows_loaded,
            "rows_quarantined": loaded.rows_quarantined,
            "attributes": dg.MetadataValue.json(dict(loaded.attributes)),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in loaded.problems) or "none"),
        }
    )
