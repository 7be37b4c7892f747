"""The customer value life cycle: BG/NBD + Gamma-Gamma, CatBoost and the hybrid, the best served.

The three methods are compared on the months before the newest snapshot (the baseline fitted at
the cutoff; CatBoost, and the hybrid that corrects the baseline's forecast, trained out of time
on the window before it); the one with the lowest per-customer value MAE is refitted at the
newest snapshot with a 12-month horizon. Only an out-of-time backtest can pick CatBoost or the
hybrid: when the orders are too short for one, CatBoost is judged by the customer split,
which flatters it, so its figures are reported and BG/NBD is kept. Without usable amounts (none,
some missing, or one amount on every order) the methods are compared on purchases and no value
is published (``value_unavailable_reason``). The method is chosen on the holdout every run, so
the refitted version always becomes champion.
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
    """Compare the methods on the holdout, refit the winner at the newest snapshot.

    Args:
        inputs: ``ml.models.customer_value.data.read_training_inputs``.
        config: Settings of the served model (its horizon is the served one, 365 days); the
            comparison uses the same settings over the holdout window, CatBoost out of time
            when enough customers are known one window before the cutoff (else by the
            customer split, reported only).
        plots_dir: Folder for the holdout plot and the model card.
    """
    compare_config = replace(config, horizon_days=(inputs.as_of - inputs.cutoff).days)
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
    on = comparison.judged_on
    winner_mae = getattr(getattr(comparison, comparison.winner), f"{on}_mae")
    value_columns = comparison.value_reason or "published"
    card = ModelCard(
        model_name=MODEL_NAME,
        intended_use="Expected order value and purchases over the next 12 months per customer, "
        "to weigh retention and cross-sell actions by what is at stake.",
        not_intended_for=("Credit limits or any decision about what a person may buy.",),
        data_window={
            "comparison_cutoff": str(inputs.cutoff.date()),
            "comparison_days": str(compare_config.horizon_days),
            "backtest_protocol": comparison.protocol,
            "method": comparison.winner,
            "decided_by": comparison.decided_by,
            "value_columns": value_columns,
        },
        metrics=metrics,
        plots={f"Predicted vs actual {on} by decile": plot},
        known_limits=(
            "Order value only: subscription fees are not in it.",
            "BG/NBD's probability alive is 1 for customers without a repeat purchase.",
            *((f"No value: {comparison.value_reason}.",) if comparison.value_reason else ()),
        ),
    )
    return Training(
        candidate=Candidate(
            name=MODEL_NAME,
            model=model,
            decide=lambda champion, version: refitted_every_run(
                f"neg_{on}_mae", -winner_mae, rows=comparison.customers
            ),
            params={
                **flat_params(config),
                "method": comparison.winner,
                "backtest_protocol": comparison.protocol,
                "judged_on": on,
                "decided_by": comparison.decided_by,
                "value_columns": value_columns,
            },
            metrics={**metrics, f"neg_{on}_mae": -winner_mae},
            card=card,
            card_dir=plots_dir / "model_card",
            plots=(plot,),
        ),
        summary={
            "method": comparison.winner,
            "backtest_protocol": comparison.protocol,
            "decided_by": comparison.decided_by,
            "value_columns": value_columns,
            **{
                f"{name}_{on_}_mae": getattr(getattr(comparison, name), f"{on_}_mae")
                for name in ("bgnbd", "catboost", "hybrid")
                for on_ in ("value", "purchases")
                if getattr(comparison, name) is not None
                and (on_ == "purchases" or comparison.value_reason is None)
            },
            "comparison_window": f"{inputs.cutoff.date()} + {compare_config.horizon_days} days",
            "customers_judged": comparison.customers,
        },
    )


def score(model: ClvModel, version: str, inputs: ValueScoringInputs) -> pd.DataFrame:
    """Expected purchases and value over the next 12 months and the probability alive per
    customer with an order: the rows of ``serving.customer_value`` (value null when the model
    was fitted without usable amounts, ``model.value_reason``)."""
    values = predict_clv(model, inputs.transactions, inputs.as_of - _DAY, inputs.features)
    values.insert(1, "as_of_date", inputs.as_of.date())
    values["method"] = model.method
    values["model_version"] = version
    return values
