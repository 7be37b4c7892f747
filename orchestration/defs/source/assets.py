"""The source of raw CRM files: the embedded synthetic CRM, or a folder of exports."""

import json
from dataclasses import asdict

import dagster as dg

from ml.core.settings import Settings
from ml.data.mapping import MappingError, candidate_files
from ml.data.sources import load_mappings, model_status
from ml.models.catalog import MODELS
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
        covariate_shift=settings.synthetic_covariate_shift,
    )


@dg.asset(key=keys.CRM_FILES, group_name="source", kinds={"python", "parquet"})
def crm_files(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """The source files ingest reads, and which models they can feed.

    With CRM_SOURCE=synthetic the embedded generator writes them (once per generator config; the
    hidden truth goes to a separate folder the pipeline never reads). Otherwise the folder holds
    a CRM's exports and, optionally, mapping.yaml (docs/bring-your-own-data.md): any subset of
    the tables; a model whose tables are absent is skipped and says which file would enable it.
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
    if not source_dir.is_dir():
        raise dg.Failure(description=f"CRM_SOURCE {source_dir} is not a folder")
    try:
        mappings = load_mappings(settings.mapping_path)
        found = {
            name: [p.name for p in candidate_files(mapping, source_dir)]
            for name, mapping in mappings.items()
        }
    except MappingError as error:
        raise dg.Failure(description=f"The source's mapping cannot be used: {error}") from error
    present = {name: int(bool(files)) for name, files in found.items()}
    status = model_status(MODELS, present)
    for said in (said for _, said in status if said != "runs"):
        context.log.info(said)
    return dg.MaterializeResult(
        metadata={
            "source": settings.source,
            "folder": dg.MetadataValue.path(str(source_dir)),
            "mapping": str(settings.mapping_path or "none: contract column names"),
            "files": dg.MetadataValue.json({k: v for k, v in found.items() if v}),
            "models": dg.MetadataValue.md(
                "| model | on this source |\n|---|---|\n"
                + "\n".join(f"| {model} | {said} |" for model, said in status)
            ),
        }
    )
