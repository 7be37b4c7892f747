"""Lead scoring: conversion propensity of open leads, with grades, drivers and plain reasons.

Rows come from ``raw.leads`` (``ml.data.flat_tables``): contract columns plus any number of typed
custom attributes ``attr_*``. The model is ``ml.modelling.flat_outcome``'s recipe (features,
holdout, calibration, reasons) with the conversion wording; it never sees ``lead_id``, dates, the
outcome, ``protected_*`` columns or personal data (which the loader never reads).

Label: converted within ``conversion_window_days`` (60) of creation. With creation dates, training
rows are the leads whose window has closed by the as-of time and the leads to score are the open
ones (created within the window, not converted yet); the holdout is the newest 20% of training
leads (out of time). Without creation dates (X Education) every labelled lead is a training row,
the holdout is a stratified 20%, and the leads to score are those not converted.

``score = round(100 * calibrated probability)``; grades by score: A >= 75, B >= 50, C >= 25, else D
(:class:`LeadConfig`). Reasons read ``"lead source: Reference (converts 2.4x the average)"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.modelling.boosting import BoostingParams
from ml.modelling.flat_outcome import (
    FlatModelConfig,
    FlatOutcome,
    FlatOutcomeModel,
    explain,
    feature_kinds,
    train_flat_model,
)

# Lead models registered before ml.modelling.flat_outcome existed pickled their Typical here.
from ml.modelling.flat_outcome import Typical as Typical
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules, ReasonWords

LABEL_COLUMN = "converted_within_window"
CATEGORICAL_FEATURES: tuple[str, ...] = ("source", "country", "company_size", "role")
NUMERIC_FEATURES: tuple[str, ...] = (
    "email_opens",
    "page_views",
    "website_visits",
    "time_on_site_minutes",
)
CONTRACT_FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
NEVER_FEATURES: frozenset[str] = frozenset(
    {"lead_id", "created_at", "converted_at", "converted", LABEL_COLUMN}
) | (PII_COLUMNS | PROTECTED_COLUMNS)
LEAD_SCORE_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "score",
    "grade",
    "conversion_probability",
    "top_drivers",
    "reason",
    "model_version",
    "reason_factors",
)
GRADES: tuple[str, ...] = ("A", "B", "C", "D")

CONVERSION = FlatOutcome(
    label_column=LABEL_COLUMN,
    date_column="created_at",
    categorical=CATEGORICAL_FEATURES,
    numeric=NUMERIC_FEATURES,
    never=NEVER_FEATURES,
    verb="converts",
    subject="leads",
    words=ReasonWords(raises="raises conversion", lowers="holds conversion down"),
    labels={
        "source": "lead source",
        "country": "country",
        "company_size": "company size",
        "role": "role",
    },
    number_nouns={
        "email_opens": "marketing e-mails opened",
        "page_views": "page views",
        "website_visits": "website visits",
        "time_on_site_minutes": "minutes on the website",
    },
)

# 5-fold CV on X Education (benchmarks/leads_xeducation.py): depth 5-6 and a few hundred rounds at
# 0.05 are on a plateau; more rounds start to overfit 7k leads. Combinations of categories cost
# 40% of the fit time on X Education for no AUC (0.8802 with max_ctr_complexity 1 against 0.8801
# with CatBoost's default 4, 2 folds); an export has many categorical columns.
LEAD_BOOSTING = BoostingParams(
    iterations=500, depth=5, learning_rate=0.05, l2_leaf_reg=5.0, max_ctr_complexity=1
)


@dataclass(frozen=True)
class LeadConfig(FlatModelConfig):
    """Settings of the lead model (the flat-table settings, plus the window and grades).

    Attributes:
        conversion_window_days: A lead counts as converted if it converts within this many days
            of creation.
        grade_a: Lowest score of grade A.
        grade_b: Lowest score of grade B.
        grade_c: Lowest score of grade C (below: D).
    """

    boosting: BoostingParams = LEAD_BOOSTING
    conversion_window_days: int = 60
    grade_a: int = 75
    grade_b: int = 50
    grade_c: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.grade_c <= self.grade_b <= self.grade_a <= 100:
            raise ValueError(
                f"grade cut-offs need 0 <= C <= B <= A <= 100, got A={self.grade_a}, "
                f"B={self.grade_b}, C={self.grade_c}"
            )
        if self.conversion_window_days < 1:
            raise ValueError("conversion_window_days must be >= 1")

    def grade(self, score: np.ndarray) -> np.ndarray:
        """Grade letter per 0-100 score."""
        return np.select(
            [score >= self.grade_a, score >= self.grade_b, score >= self.grade_c],
            ["A", "B", "C"],
            "D",
        ).astype(object)


class LeadModel(FlatOutcomeModel):
    """The lead model (its class name is in the registry's pickles)."""

    outcome = CONVERSION
    config: LeadConfig


def lead_feature_kinds(frame: pd.DataFrame, use_attributes: bool = True) -> dict[str, str]:
    """The features a lead model may use on ``frame`` (``flat_outcome.feature_kinds``)."""
    return dict(feature_kinds(frame, CONVERSION, use_attributes))


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and bool(frame[column].notna().any())


def lead_training_frame(
    leads: pd.DataFrame, as_of: datetime | None = None, conversion_window_days: int = 60
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``raw.leads`` rows into labelled training leads and open leads to score.

    Args:
        leads: Rows of ``raw.leads`` (``ml.data.flat_tables.read_flat_table``).
        as_of: What is known at this (naive UTC) time; default the newest creation or
            conversion time in ``leads``. Ignored without creation dates.
        conversion_window_days: Label window after creation.

    Returns:
        ``(training, scoring)``. Training rows carry the 0/1 label ``converted_within_window``:
        with creation dates, leads whose window closed by ``as_of``, labelled by a conversion on
        or before the window's end; without, every lead with a known ``converted``. Scoring rows
        are the leads not converted by ``as_of``: created within the window before ``as_of``
        (with dates), or all not-converted leads (without dates; those scores are in-sample).
    """
    if "lead_id" not in leads.columns:
        raise ValueError("leads lack the lead_id column")
    if not _has_values(leads, "created_at"):
        converted = leads["converted"] if "converted" in leads.columns else None
        if converted is None or not converted.notna().any():
            raise ValueError("leads have neither creation dates nor a converted flag to learn from")
        known = converted.notna().to_numpy()
        training = leads.loc[known].reset_index(drop=True)
        training[LABEL_COLUMN] = training["converted"].astype(bool).to_numpy()
        scoring = leads.loc[~converted.astype("boolean").fillna(False).to_numpy(dtype=bool)]
        return training, scoring.reset_index(drop=True)

    created = pd.to_datetime(leads["created_at"])
    has_dates = _has_values(leads, "converted_at")
    conv = pd.to_datetime(leads["converted_at"]) if has_dates else None
    if as_of is None:
        latest = [created.max()] + ([conv.max()] if conv is not None else [])
        as_of = max(latest).to_pydatetime()
    now = pd.Timestamp(as_of)
    window = pd.Timedelta(days=conversion_window_days)
    closed = (created + window <= now).to_numpy()
    if conv is not None:
        label = (conv.notna() & (conv <= created + window) & (conv <= now)).to_numpy()
        converted_by_now = (conv.notna() & (conv <= now)).to_numpy()
    else:
        # A flag without a date: take it as the outcome of the window.
        label = leads["converted"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        converted_by_now = label
    training = leads.loc[closed].reset_index(drop=True)
    training[LABEL_COLUMN] = label[closed]
    open_now = (created <= now).to_numpy() & ~closed & ~converted_by_now
    return training, leads.loc[open_now].reset_index(drop=True)


def score_leads(
    model: LeadModel,
    frame: pd.DataFrame,
    model_version: str | None = None,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Score, grade and explain leads: the rows of ``serving.lead_scores``.

    Args:
        model: The lead model.
        frame: Leads to score (the scoring frame of :func:`lead_training_frame`).
        model_version: Registered model version written to each row (``None`` until the caller
            registers the model).
        rules: What a reason may cite (``CRM_REASON_*``, ``ml.modelling.reasons``).

    Returns:
        Exactly :data:`LEAD_SCORE_COLUMNS`: ``lead_id``, ``score`` (int 0-100, the calibrated
        probability in percent), ``grade`` (A-D by :class:`LeadConfig` cut-offs),
        ``conversion_probability``, ``top_drivers`` (JSON), ``reason`` and ``model_version``.
        Highest score first; ties by ``lead_id``.
    """
    proba = model.predict_proba(frame) if len(frame) else np.empty(0)
    score = np.rint(proba * 100).astype("int32")
    explained = explain(model, frame, rules)
    scores = pd.DataFrame(
        {
            "lead_id": frame["lead_id"].astype(str).to_numpy(dtype=object),
            "score": score,
            "grade": model.config.grade(score),
            "conversion_probability": proba.astype("float64"),
            "top_drivers": explained["top_drivers"].to_numpy(dtype=object),
            "reason": explained["reason"].to_numpy(dtype=object),
            "model_version": pd.Series([model_version] * len(frame), dtype=object),
            "reason_factors": explained["reason_factors"].to_numpy(dtype=object),
        }
    )
    scores = scores.sort_values(["score", "lead_id"], ascending=[False, True], kind="stable")
    return scores.reset_index(drop=True)[list(LEAD_SCORE_COLUMNS)]


def train_lead_model(
    frame: pd.DataFrame,
    config: LeadConfig | None = None,
    column_labels: dict[str, str] | None = None,
    missing_meanings: dict[str, str] | None = None,
) -> LeadModel:
    """Train the lead model on training leads of :func:`lead_training_frame`
    (``flat_outcome.train_flat_model``)."""
    model = train_flat_model(
        LeadModel, frame, config or LeadConfig(), column_labels, missing_meanings
    )
    assert isinstance(model, LeadModel)
    return model
