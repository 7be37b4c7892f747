"""Lead scoring: train on the lead export, score the open leads."""

from datetime import UTC, datetime

import dagster as dg

from ml.core.warehouse import connect
from ml.data.contract import LEADS_TABLE
from ml.data.flat_tables import read_flat_table
from ml.modelling.fairness import FairnessConfig
from ml.modelling.reasons import reason_rules
from ml.modelling.registry import load_champion, register
from ml.models.lead_scoring import pipeline as leads
from ml.models.lead_scoring.model import LEAD_BOOSTING, LeadConfig
from ml.serving.tables import publish, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import (
    TRAINING_TAG,
    published_metadata,
    training_metadata,
)
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings, registry

LEAD_SCORES = serving_table("lead_scores")


@dg.asset(
    key=keys.model(leads.MODEL_NAME),
    group_name="lead_scoring",
    kinds={"catboost", "mlflow"},
    deps=[keys.raw("leads")],
    tags=TRAINING_TAG,
)
def lead_scoring_model(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """CatBoost conversion model on every mapped column and custom attribute of the export.

    Evaluated on the newest 20% of labelled leads (stratified when the export has no dates);
    champion when its holdout ROC AUC is at least the champion's on the same leads and, when the
    mapping declares protected columns, the fairness gate on who is graded A passes.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, leads.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, read_only=True) as con:
        table = read_flat_table(con, LEADS_TABLE)
    training = leads.train(
        table,
        LeadConfig(boosting=LEAD_BOOSTING.with_threads(settings.threads)),
        plots_dir=settings.reports_dir / leads.MODEL_NAME / context.run_id,
        fairness=FairnessConfig(
            min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio
        ),
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=keys.serving(LEAD_SCORES.name),
    group_name="lead_scoring",
    kinds={"duckdb", "parquet"},
    deps=[keys.model(leads.MODEL_NAME), keys.raw("leads")],
)
def lead_scores(crm: CrmSettings) -> dg.MaterializeResult:
    """Open leads scored 0-100 with a grade A-D, drivers and a reason, by lead_scoring@champion.

    The table holds the open leads of the newest run (replaced whole, in one transaction).
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, leads.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        rows = read_flat_table(con, LEADS_TABLE).rows
        model, version = load_champion(registry(settings), leads.MODEL_NAME)
        scores = leads.score(
            model,
            version,
            rows,
            datetime.now(UTC).replace(tzinfo=None),
            reason_rules(settings),
        )
        published = publish(con, LEAD_SCORES, scores, settings.exports_dir)
    return dg.MaterializeResult(metadata=published_metadata(published, scores))
