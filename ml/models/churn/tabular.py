"""The churn model on a plain tabular data set: one row per customer and a 0/1 label.

The pipeline trains on point-in-time snapshots and holds out the newest as-of date to choose the
calibration (``ml.models.churn.model``). A public churn table such as IBM's Telco sample has no dates, so
here a stratified share of the training rows is that calibration slice; the booster, its
settings (``TrainingConfig``) and the calibration choice (``fit_with_calibration``) are the
pipeline's own. ``choose_config_by_cv`` picks settings by cross-validation inside the rows it is
given, so an outer evaluation that calls it on its training fold stays honest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from ml.modelling.boosting import (
    CalibratedBooster,
    CalibrationReport,
    catboost_frame,
    fit_with_calibration,
)
from ml.models.churn.model import TrainingConfig


class TabularModel(CalibratedBooster):
    """A calibrated booster on the feature columns of a plain table."""

    def __init__(
        self,
        booster: CatBoostClassifier,
        feature_names: tuple[str, ...],
        cat_features: tuple[str, ...],
    ) -> None:
        self.booster = booster
        self.feature_names = feature_names
        self.cat_features = cat_features
        self.calibrator = None
        self.calibration_report = CalibrationReport("none")

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The features in model order: categories as strings, everything else float64."""
        return catboost_frame(frame, self.feature_names, self.cat_features, what="tabular model")


@dataclass(frozen=True)
class TabularTask:
    """What to learn from a table.

    Attributes:
        label: The 0/1 label column; every other column is a feature.
        cat_features: The categorical feature columns.
        monotone_constraints: Feature to 1 (the risk never falls as it grows) or -1 (never rises).
        calibration_fraction: Share of the training rows held out (stratified) to choose the
            calibration, as the newest as-of date is in the pipeline.
    """

    label: str
    cat_features: tuple[str, ...] = ()
    monotone_constraints: Mapping[str, int] | None = None
    calibration_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(
                f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}"
            )

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """The 0/1 labels of ``frame``."""
        if self.label not in frame.columns:
            raise ValueError(f"frame lacks the label column {self.label!r}")
        values = frame[self.label]
        if values.isna().any():
            raise ValueError(f"{int(values.isna().sum())} rows have a null {self.label!r}")
        return values.astype(int).to_numpy()

    def feature_names(self, frame: pd.DataFrame) -> tuple[str, ...]:
        """Every column of ``frame`` but the label."""
        return tuple(str(c) for c in frame.columns if c != self.label)


def _fit_booster(frame: pd.DataFrame, task: TabularTask, config: TrainingConfig) -> TabularModel:
    y = task.labels(frame)
    if len(np.unique(y)) < 2:
        raise ValueError("training rows hold a single class; cannot fit a model")
    booster = config.boosting.classifier(task.monotone_constraints)
    model = TabularModel(booster, task.feature_names(frame), task.cat_features)
    booster.fit(Pool(model.prepare(frame), label=y, cat_features=list(model.cat_features)))
    return model


def train_tabular_model(
    frame: pd.DataFrame, task: TabularTask, config: TrainingConfig | None = None
) -> TabularModel:
    """Train the churn booster on a plain table and choose its calibration as the pipeline does.

    Args:
        frame: Training rows: the label and the feature columns.
        task: Label, categorical columns, constraints and calibration share.
        config: Booster and calibration settings (``training_as_of_dates`` is not used).

    Returns:
        The model; ``predict_proba`` gives calibrated probabilities.

    Raises:
        ValueError: If the label is missing or null, or a class is missing from the rows.
    """
    config = config or TrainingConfig()
    frame = frame.reset_index(drop=True)
    fit_rows, calibration_rows = train_test_split(
        np.arange(len(frame)),
        test_size=task.calibration_fraction,
        stratify=task.labels(frame),
        random_state=config.boosting.seed,
    )
    # The fitting rows first, then the calibration rows: the order the refit sees them in.
    order = np.concatenate([np.sort(fit_rows), np.sort(calibration_rows)])
    return fit_with_calibration(
        lambda rows: _fit_booster(rows, task, config),
        frame.iloc[order].reset_index(drop=True),
        np.arange(len(order)) >= len(fit_rows),
        task.labels,
        config.calibration,
        config.boosting.seed,
        config.refit_without_calibrator,
    ).model


@dataclass(frozen=True)
class ConfigChoice:
    """The settings chosen by inner cross-validation and the mean AUC of every candidate."""

    config: TrainingConfig
    candidate_auc: tuple[float, ...]


def choose_config_by_cv(
    frame: pd.DataFrame,
    task: TabularTask,
    candidates: Sequence[TrainingConfig],
    folds: int = 3,
    seed: int = 0,
) -> ConfigChoice:
    """The candidate with the highest mean ROC AUC over stratified folds of ``frame``.

    Only ``frame`` is read, so an outer evaluation that passes its training fold never tunes on
    its test rows. Candidates are fitted without calibration: a monotone calibrator does not
    change the ranking, and AUC only judges the ranking.

    Args:
        frame: Rows to tune on (the label and the features).
        task: As :func:`train_tabular_model`.
        candidates: Settings to compare (at least one).
        folds: Inner folds.
        seed: Seed of the fold assignment.

    Returns:
        The best candidate and every candidate's mean AUC, in the order given.
    """
    if not candidates:
        raise ValueError("no candidate settings to choose from")
    frame = frame.reset_index(drop=True)
    y = task.labels(frame)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, y))
    mean_auc = []
    for candidate in candidates:  # a handful of settings, each a few fits
        uncalibrated = replace(candidate, calibration="none")
        auc = [
            roc_auc_score(
                y[test],
                _fit_booster(frame.iloc[train], task, uncalibrated).raw_logit(frame.iloc[test]),
            )
            for train, test in splits
        ]
        mean_auc.append(float(np.mean(auc)))
    return ConfigChoice(candidates[int(np.argmax(mean_auc))], tuple(mean_auc))
