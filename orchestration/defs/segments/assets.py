"""Behavioural segments (recency, frequency, value, engagement) a marketer can act on."""

from dataclasses import replace

import dagster as dg

from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.datasets import read_scoring_features
from ml.modelling.registry import log_unregistered_run
from ml.models.segments.model import SegmentConfig, assign_segments, fit_segments, profile
from orchestration.defs.churn.assets import CUSTOMER_FEATURES, customer_scores, mlflow_config
from orchestration.defs.governance.assets import erasure
from orchestration.defs.markdown import markdown_table
from orchestration.resources import CrmSettings


@dg.asset(
    key=["serving", "customer_segments"],
    group_name="serving",
    kinds={"sklearn", "duckdb", "parquet"},
    deps=[customer_scores, CUSTOMER_FEATURES, erasure],
)
def customer_segments(crm: CrmSettings) -> dg.MaterializeResult:
    """One segment per customer for the newest as-of date, and one profile row per segment.

    KMeans on the behaviour of the newest snapshot, refitted every run: the same data and seed
    give the same segments and names (segment 1 is always the most valuable). Churn risk only
    names and profiles the segments. Both tables are published atomically for that as-of date
    and exported as Parquet; the model (centres, scaling, names) and the profiles are logged to
    the MLflow experiment `segments`.
    """
    settings = crm.get()
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        features = read_scoring_features(con)
        as_of = features["as_of_date"].iloc[0]
        churn = con.execute(
            "select customer_id, churn_probability from serving.customer_scores "
            "where as_of_date = ?",
            [as_of],
        ).df()
        frame = features.merge(churn, on="customer_id", how="inner", validate="one_to_one")
        model = fit_segments(frame, SegmentConfig())
        assigned = assign_segments(model, frame)
        profiles = profile(model, assigned, frame)
        profiles.insert(0, "as_of_date", assigned["as_of_date"].iloc[0])
        for table, rows in (("customer_segments", assigned), ("segment_profiles", profiles)):
            publish_table(
                con,
                rows,
                "serving",
                table,
                replace_where="as_of_date = ?",
                replace_params=[as_of],
            )
        paths = [
            export_parquet(con, "serving", table, settings.exports_dir)
            for table in ("customer_segments", "segment_profiles")
        ]
    run_id = log_unregistered_run(
        replace(mlflow_config(settings), experiment="segments"),
        params={**model.config.to_dict(), "as_of_date": str(as_of)},
        metrics={"segments": float(model.n_segments), "customers": float(len(assigned))},
        json_artifacts={
            "segment_model.json": model.to_dict(),
            "segment_profiles.json": profiles.astype({"as_of_date": str}).to_dict("records"),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(assigned),
            "as_of_date": str(as_of),
            "segments": model.n_segments,
            "profiles": dg.MetadataValue.md(
                markdown_table(profiles.drop(columns=["description", "as_of_date"]))
            ),
            "table": "serving.customer_segments, serving.segment_profiles",
            "path": dg.MetadataValue.path(str(paths[0])),
            "mlflow_run_id": run_id,
        }
    )
