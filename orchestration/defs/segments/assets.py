"""Behavioural segments (recency, frequency, value, engagement) a marketer can act on."""

from collections.abc import Iterator

import dagster as dg

from ml.core.warehouse import connect
from ml.modelling.registry import log_unregistered_run
from ml.models.segments import pipeline as segments
from ml.models.segments.data import read_segmentation_inputs
from ml.serving.tables import publish, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import published_metadata
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings, registry

CUSTOMER_SEGMENTS = serving_table("customer_segments")
SEGMENT_PROFILES = serving_table("segment_profiles")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            keys.serving(table.name),
            group_name="segments",
            kinds={"sklearn", "duckdb", "parquet"},
            deps=[keys.serving("customer_scores"), keys.CUSTOMER_FEATURES, keys.ERASURE],
            description=f"serving.{table.name}: {table.grain}.",
        )
        for table in (CUSTOMER_SEGMENTS, SEGMENT_PROFILES)
    ],
    name="customer_segments",
)
def customer_segments(crm: CrmSettings) -> Iterator[dg.MaterializeResult]:
    """One segment per customer for the newest snapshot, and one profile row per segment.

    KMeans on the behaviour of the newest snapshot, refitted every run: the same data and seed
    give the same segments and names (segment 1 is always the most valuable). Churn risk only
    names and profiles the segments. The model (centres, scaling, names) and the profiles are
    logged to the MLflow experiment `segments`.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, segments.NEEDS)) is not None:
        for name in (CUSTOMER_SEGMENTS.name, SEGMENT_PROFILES.name):
            yield dg.MaterializeResult(asset_key=keys.serving(name), metadata=skip.metadata)
        return
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        segmentation = segments.train_and_score(read_segmentation_inputs(con))
        published = [
            publish(con, CUSTOMER_SEGMENTS, segmentation.assigned, settings.exports_dir),
            publish(con, SEGMENT_PROFILES, segmentation.profiles, settings.exports_dir),
        ]
    run_id = log_unregistered_run(
        registry(settings), segments.EXPERIMENT, *segmentation.run_record()
    )
    for table, rows in zip(published, (segmentation.assigned, segmentation.profiles), strict=True):
        yield dg.MaterializeResult(
            asset_key=keys.serving(table.table.name),
            metadata=published_metadata(table, rows, mlflow_run_id=run_id),
        )
