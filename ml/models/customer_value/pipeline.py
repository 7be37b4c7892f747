"""The customer value life cycle: BG/NBD + Gamma-Gamma against CatBoost, the better one served.

Both models are compared out of time on the months before the newest snapshot (fitted at the
cutoff, CatBoost trained on the window before it); the one with the lower per-customer value MAE
is refitted at the newest snapshot with a 12-month horizon. The method is chosen on the holdout
every run, so the refitted version always becomes champion.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ml.data.sources import Needs
from ml.modelling.boosting import flat_params
from ml.modelling.model_card import ModelCard
from ml.modelling.promotion import refitted_every_run
from ml.modelling.registry import Candidate, Training
from ml.models.customer_value.data import ValueScoringInputs, ValueTrainingInputs
from ml.models.customer_value.model import (
    ClvConfig,
    ClvModel,
    compare_on_holdout,
    fit_clv,
    plot_clv_holdout,
    predict_clv,
)

MODEL_NAME = "customer_value"
NEEDS = Needs(MODEL_NAME, tables=("orders",), uses=("customers",))
"""The source tables the model needs rows in (``ml.data.sources``)."""
# Features at an as-of date describe the days before it: the last observed day is the day before.
_DAY = pd.Timedelta(days=1)


def train(inputs: ValueTrainingInputs, config: ClvConfig, plots_dir: Path) -> Training:
    """Compare both models on the holdout, refit the winner at the newest snapshot.

    Args:
        inputs: ``ml.models.customer_value.data.read_training_inputs``.
        config: Settings of the served model (its horizon is the served one, 365 days); the
            comparison uses the same settings over the holdout window, CatBoost out of time.
        plots_dir: Folder for the holdout plot and the model card.
    """
    compare_config = replace(
        config,
        horizon_days=(inputs.as_of - inputs.cutoff).days,
        catboost_protocol="out_of_time",
    )
    comparison = compare_on_holdout(
        inputs.transactions,
        inputs.cutoff - _DAY,
        compare_config,
        inputs.features_at_cutoff,
        inputs.features_before_cutoff,
    )
    model = fit_clv(
        inputs.transactions,
        inputs.as_of - _DAY,
        comparison.winner,
        config,
        inputs.features_a_year_before,
    )
    plot = plot_clv_holdout(comparison, plots_dir / "clv_holdout.png")
    metrics = comparison.as_metrics()
    winner_mae = getattr(comparison, comparison.winner).value_mae
    card = ModelCard(
        model_name=MODEL_NAME,
        intended_use="Expected order value and purchases over the next 12 months per customer, "
        "to weigh retention and cross-sell actions by what is at stake.",
        not_intended_for=("Credit limits or any decision about what a person may buy.",),
        data_window={
            "comparison_cutoff": str(inputs.cutoff.date()),
            "comparison_days": str(compare_config.horizon_days),
            "method": comparison.winner,
        },
        metrics=metrics,
        plots={"Predicted vs actual value by decile": plot},
        known_limits=(
            "Order value only: subscription fees are not in it.",
            "BG/NBD's probability alive is 1 for customers without a repeat purchase.",
        ),
    )
    return Training(
        candidate=Candidate(
            name=MODEL_NAME,
            model=model,
            decide=lambda champion, version: refitted_every_run(
                "neg_value_mae", -winner_mae, rows=comparison.customers
            ),
            params={**flat_params(config), "method": comparison.winner},
            metrics={**metrics, "neg_value_mae": -winner_mae},
            card=card,
            card_dir=plots_dir / "model_card",
            plots=(plot,),
        ),
        summary={
            "method": comparison.winner,
            "bgnbd_value_mae": comparison.bgnbd.value_mae,
            "catboost_value_mae": comparison.catboost.value_mae,
            "bgnbd_purchases_mae": comparison.bgnbd.purchases_mae,
            "catboost_purchases_mae": comparison.catboost.purchases_mae,
            "comparison_window": f"{inputs.cutoff.date()} + {compare_config.horizon_days} days",
        },
    )


def score(model: ClvModel, version: str, inputs: ValueScoringInputs) -> pd.DataFrame:
    """Expected purchases and value over the next 12 months and the probability alive per
    customer with an order: the rows of ``serving.customer_value``."""
    values = predict_clv(model, inputs.transactions, inputs.as_of - _DAY, inputs.features)
    values.insert(1, "as_of_date", inputs.as_of.date())
    values["method"] = model.method
    values["model_version"] = version
    return values
