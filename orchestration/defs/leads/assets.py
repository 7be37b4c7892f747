"""Lead scoring: load the lead export through its column mapping, train, score open leads."""

from datetime import UTC, datetime

import dagster as dg
from sklearn.metrics import roc_auc_score

from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.contract import LEADS_TABLE
from ml.data.ingest import ContractError, load_empty_table
from ml.data.lead_mapping import MappingError, load_leads, load_mapping, read_leads
from ml.modelling.evaluation import plot_shap_summary
from ml.modelling.registry import load_champion_model, log_and_register_model
from ml.models.lead_scoring.model import (
    LeadConfig,
    holdout_split,
    lead_feature_importance,
    lead_training_frame,
    plot_lead_model,
    score_leads,
    train_lead_model,
)
from orchestration.defs.markdown import markdown_table
from orchestration.defs.models import (
    TRAINING_TAG,
    model_card_metadata,
    model_mlflow_config,
    registration_metadata,
)
from orchestration.defs.source.assets import crm_source_files
from orchestration.resources import CrmSettings

MODEL_NAME = "lead_scoring"
_EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dg.asset(key=["raw", "leads"], group_name="ingest", kinds={"duckdb"}, deps=[crm_source_files])
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


@dg.asset(group_name="leads", kinds={"catboost", "mlflow"}, deps=[raw_leads], tags=TRAINING_TAG)
def lead_model(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """CatBoost conversion model on every mapped column and custom attribute.

    Evaluated on the newest 20% of labelled leads (stratified when the export has no dates) and
    registered in MLflow as `lead_scoring`: champion when its holdout ROC AUC is at least the
    champion's on the same leads.
    """
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        leads = read_leads(con)
    if leads.empty:
        return dg.MaterializeResult(metadata={"trained": False, "reason": "no leads"})
    config = LeadConfig(thread_count=settings.threads)
    training, _ = lead_training_frame(leads, conversion_window_days=config.conversion_window_days)
    model = train_lead_model(training, config)
    plots = plot_lead_model(model, settings.reports_dir / MODEL_NAME / context.run_id)
    _, is_holdout = holdout_split(training, config)
    holdout = training.loc[is_holdout]
    assert model.holdout is not None and model.holdout_labels is not None
    labels, new_auc = model.holdout_labels, model.holdout.roc_auc

    plots["shap_summary"], _ = plot_shap_summary(
        model.shap_values(holdout),
        model.prepare(holdout),
        settings.reports_dir / MODEL_NAME / context.run_id / "shap_summary.png",
    )
    importance = lead_feature_importance(model)
    mlflow_config = model_mlflow_config(settings, MODEL_NAME)
    registration = log_and_register_model(
        mlflow_config,
        model,
        metric="roc_auc",
        new_score=new_auc,
        champion_score=lambda champion: float(
            roc_auc_score(labels, champion.predict_proba(holdout))
        ),
        params=config.as_params(),
        metrics=model.holdout.as_metrics(),
        plot_paths=list(plots.values()),
        json_artifacts={"feature_importance.json": importance},
    )
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
    card = model_card_metadata(
        mlflow_config,
        registration,
        settings.reports_dir / MODEL_NAME / context.run_id / "model_card",
        intended_use="Rank open leads by the chance of converting within the conversion "
        "window, so sales call the most promising first.",
        not_intended_for=("Deciding whether a person may buy or at what price.",),
        data_window={"training_leads": str(len(training)), "holdout": "newest 20% by creation"},
        features=tuple((name, kind, "") for name, kind in model.kinds.items()),
        metrics={k: v for k, v in model.holdout.as_metrics().items() if k != "top_fraction"},
        plots={name.capitalize(): p for name, p in plots.items()},
        calibration={"method": model.calibration_report.method, "brier": model.holdout.brier},
        known_limits=(
            "Columns sales fill in after contact are leakage and must be dropped in the mapping.",
            "Without creation dates the holdout is random and the scores of open leads are "
            "in-sample.",
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "roc_auc": new_auc,
            "pr_auc": model.holdout.pr_auc,
            "lift_top_decile": model.holdout.lift_at_k,
            "conversion_rate": model.holdout.base_rate,
            "holdout_leads": model.holdout.n,
            "training_leads": len(training),
            "calibration": model.calibration_report.method,
            "top_features": dg.MetadataValue.md(
                "\n".join(f"- {name}: {value:.1f}" for name, value in top)
            ),
            **{f"{name}_plot": dg.MetadataValue.path(str(p)) for name, p in plots.items()},
            **registration_metadata(registration),
            **card,
        }
    )


@dg.asset(
    key=["serving", "lead_scores"],
    group_name="serving",
    kinds={"duckdb", "parquet"},
    deps=[lead_model, raw_leads],
)
def lead_scores(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Open leads scored 0-100 with a grade A-D, drivers and a reason, by lead_scoring@champion.

    The table holds the open leads of the newest run (replaced whole, in one transaction).
    """
    settings = crm.get()
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        leads = read_leads(con)
        if leads.empty:
            return dg.MaterializeResult(metadata={"published": False, "reason": "no leads"})
        model, version = load_champion_model(model_mlflow_config(settings, MODEL_NAME))
        _, open_leads = lead_training_frame(
            leads, conversion_window_days=model.config.conversion_window_days
        )
        scores = score_leads(model, open_leads, model_version=version)
        scores.insert(1, "scored_at", datetime.now(UTC).replace(tzinfo=None))
        publish_table(con, scores, "serving", "lead_scores")
        path = export_parquet(con, "serving", "lead_scores", settings.exports_dir)
    grades = scores["grade"].value_counts().sort_index().to_dict()
    return dg.MaterializeResult(
        metadata={
            "published": True,
            "dagster/row_count": len(scores),
            "model_version": version,
            "grades": dg.MetadataValue.json({str(k): int(v) for k, v in grades.items()}),
            "best_leads": dg.MetadataValue.md(
                markdown_table(scores.head(5)[["lead_id", "score", "grade", "reason"]])
            ),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
