"""The source of raw CRM files: the embedded synthetic CRM, or a folder of exports."""

import json
from dataclasses import asdict

import dagster as dg

from ml.core.settings import Settings
from ml.data.contract import RAW_TABLES
from ml.synthetic.generator import SyntheticConfig, generate
from orchestration.lib import keys
from orchestration.resources import CrmSettings

_STAMP = "generator-config.json"


def synthetic_config(settings: Settings) -> SyntheticConfig:
    return SyntheticConfig(
        customers=settings.synthetic_customers,
        seed=settings.synthetic_seed,
        start_date=settings.synthetic_start_date,
        end_date=settings.synthetic_end_date,
        event_share=settings.synthetic_event_share,
    )


@dg.asset(key=keys.CRM_FILES, group_name="source", kinds={"python", "parquet"})
def crm_files(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """The raw contract files that ingest reads (docs/data-contract.md).

    With CRM_SOURCE=synthetic the embedded generator writes them (once per generator config; the
    hidden truth goes to a separate folder the pipeline never reads). Otherwise the asset checks
    that the export folder holds a file for every required contract table (an optional one, such
    as campaigns, is loaded empty when absent).
    """
    settings = crm.get()
    source_dir = settings.source_dir
    if settings.is_synthetic:
        config = synthetic_config(settings)
        stamp = source_dir / _STAMP
        wanted = json.dumps(asdict(config), default=str, sort_keys=True)
        if stamp.exists() and stamp.read_text() == wanted:
            context.log.info(f"Synthetic CRM for {wanted} already in {source_dir}")
        else:
            result = generate(config, source_dir, settings.truth_dir)
            stamp.write_text(wanted)
            context.log.info(f"Generated synthetic CRM in {result.seconds:.1f} s")
    found = {name: sorted(p.name for p in source_dir.glob(f"{name}.*")) for name in RAW_TABLES}
    missing = [name for name, files in found.items() if not files and not RAW_TABLES[name].optional]
    if missing:
        raise dg.Failure(
            description=f"{source_dir}: no file for contract table(s) {', '.join(missing)} "
            "(expected <table>.csv or <table>.parquet; see docs/data-contract.md)"
        )
    return dg.MaterializeResult(
        metadata={
            "source": settings.source,
            "folder": dg.MetadataValue.path(str(source_dir)),
            "files": dg.MetadataValue.json(found),
        }
    )
