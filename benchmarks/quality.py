"""Quality of the project's own models on public data, against baselines and anchors (issue 6).

    make bench-quality
    .venv/bin/python benchmarks/quality.py --data ../shared/data --threads 2
    .venv/bin/python benchmarks/quality.py --smoke --output /tmp/quality.json   # tiny, seconds

Every figure comes from the code the pipeline runs (``ml/``), on the public data sets in
``--data``, else ``CRM_PUBLIC_DATA``, else ``../shared/data`` beside the repository (never copied
into it); a missing file stops the run with its path.

* Telco churn: 5-fold stratified CV ROC AUC (shuffled, random_state 0) of the churn model
  (``ml.models.churn.tabular``: the pipeline's booster and calibration choice on a plain table), with its
  variants, and of a one-hot logistic regression on the same folds. Any tuning happens by inner
  CV on the training fold only.
* Leads: the same protocol for the lead model on X Education through
  ``examples/x_education/mapping.yaml`` (``benchmarks/leads_xeducation.py``).
* Hillstrom: uplift@30% and Qini of the uplift learners (women's e-mail against no e-mail,
  outcome visit), each the mean over five stratified 70/30 splits (``benchmarks/uplift_hillstrom.py``);
  the 95% interval of the mean resamples customers (see :func:`mean_uplift_interval`).
* CDNOW and Online Retail: per-customer MAE of the project's CLV (CatBoost and the hybrid that
  corrects BG/NBD + Gamma-Gamma) against BG/NBD + Gamma-Gamma, out of time on both: CDNOW in
  26-week windows (trained at 1997-07-01, judged at 1997-12-30), Online Retail trained at
  2011-01-19 and judged at 2011-06-30 (``benchmarks/clv_public.py``).
* Synthetic: the churn model's out-of-time AUC and the oracle AUC on the default synthetic CRM,
  from the pipeline's own assets (generate, ingest, dbt, checks, ``models/churn``) run in process
  in a temporary ``CRM_HOME``; and the churn AUC estimated without labels (CBPE) against the
  realized AUC of a scoring run, with and without a planted covariate shift
  (``benchmarks/cbpe_synthetic.py``, the ``synthetic.cbpe_*`` keys).

Writes ``benchmarks/results/quality.json`` and the "Quality on public data" section of
``benchmarks/RESULTS.md``. ``--stages cdnow online_retail`` reruns only those stages and
replaces them in the recorded ``quality.json`` (the other stages keep their figures and date;
``updated`` says which stages were rerun when). ``--smoke`` runs every stage on a few hundred
rows with 2 folds and few boosting rounds, writes only ``--output`` and proves the code runs, not
the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The sibling benchmark scripts are modules beside this one (the script's folder is on sys.path).
from cbpe_synthetic import synthetic_cbpe
from clv_public import cdnow_config, compare_cdnow, compare_online_retail, online_retail_config
from leads_xeducation import (
    X_EDUCATION_MAPPING,
    cross_validate,
    data_dir,
    lead_mapping,
    load_x_education,
    lr_inputs,
    one_hot_logistic_regression,
)
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from uplift_hillstrom import (
    CAT_FEATURES,
    FEATURES,
    fit_learner,
    load_hillstrom,
    split_train_test,
)

from ml.core.settings import Settings
from ml.modelling.boosting import flat_params, with_settings
from ml.modelling.uplift import (
    UpliftConfig,
    UpliftModel,
    bootstrap_uplift_at_k,
    choose_uplift_config_by_cv,
    qini_coefficient,
    uplift_at_k,
)
from ml.models.churn.model import TrainingConfig
from ml.models.churn.tabular import (
    TabularModel,
    TabularTask,
    choose_config_by_cv,
    train_tabular_model,
)
from ml.models.customer_value.model import ClvConfig
from ml.models.lead_scoring.model import LeadConfig, lead_training_frame

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = Path(__file__).resolve().parent / "results" / "quality.json"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION_TITLE = "## Quality on public data (`make bench-quality`)"
CV_SEED = 0
UPLIFT_K = 0.3

TELCO_FILE = Path("telco_churn") / "Telco-Customer-Churn.csv"
TELCO_LABEL = "churned"
# Columns sales fill in during or after the contact (or the company derives later): a lead score
# must exist when the lead arrives. The mapping must drop them; it also says why, per column.
LEADS_AFTER_CONTACT = (
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "Last Notable Activity",
)

# Issue 6's targets.
TELCO_TARGET_AUC = 0.850
HILLSTROM_TARGET_UPLIFT = 0.07


# --------------------------------------------------------------------------------------------
# Run settings and progress
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """Sizes of one run: the full benchmark or the smoke run of the test suite.

    Attributes:
        rows: Rows (customers for CDNOW) kept of each public data set; ``None`` keeps all.
        folds: Outer CV folds of Telco and leads.
        inner_folds: Folds of the inner CV that tunes Telco settings on a training fold.
        iterations: Upper bound on every booster's rounds; ``None`` keeps the settings' own.
        candidates: How many settings of each tuning grid the inner CV compares; ``None``: all.
        hillstrom_seeds: Split seeds of Hillstrom.
        n_boot: Bootstrap resamples of the uplift intervals.
        synthetic_customers: Size of the synthetic CRM; ``None`` is the default CRM.
        threads: CatBoost threads.
    """

    rows: int | None = None
    folds: int = 5
    inner_folds: int = 3
    iterations: int | None = None
    candidates: int | None = None
    hillstrom_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_boot: int = 1000
    synthetic_customers: int | None = None
    threads: int = 2

    def rounds(self, iterations: int) -> int:
        """``iterations``, capped by the protocol's bound."""
        return iterations if self.iterations is None else min(iterations, self.iterations)

    def grid(self, grid: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """The first ``candidates`` settings of a tuning grid (all when ``None``)."""
        return grid if self.candidates is None else grid[: self.candidates]

    def sample(self, frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
        """At most ``rows`` random rows of ``frame`` (all of it when ``rows`` is ``None``)."""
        if self.rows is None or len(frame) <= self.rows:
            return frame
        return frame.sample(self.rows, random_state=seed).reset_index(drop=True)


FULL = Protocol()
SMOKE = Protocol(
    rows=400,
    folds=2,
    inner_folds=2,
    iterations=10,
    candidates=2,
    hillstrom_seeds=(0, 1),
    n_boot=20,
    synthetic_customers=300,
)


class Progress:
    """Prints one line per stage with the seconds elapsed since the run began."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {message}", flush=True)


def require(*paths: Path) -> None:
    """Stop with the paths that are missing and how to point the run at the data."""
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(
            f"not found: {', '.join(missing)}. Pass --data or set CRM_PUBLIC_DATA to the folder "
            "of the public data sets (../shared/data beside the repository; see its README)."
        )


# What each stage reads from the public data folder.
PUBLIC_FILES = {
    "telco": TELCO_FILE,
    "leads": Path("lead_scoring") / "leads_x_education.csv",
    "hillstrom": Path("hillstrom") / "hillstrom.csv",
    "cdnow": Path("cdnow") / "cdnow_master_transactions.csv",
    "online_retail": Path("online_retail") / "online_retail_part1_2010-12_to_2011-04.csv.gz",
}


def _settings_text(overrides: dict[str, Any], default: str = "pipeline") -> str:
    """Settings over the pipeline's, in words (``default`` when there are none)."""
    return ", ".join(f"{k} {v}" for k, v in overrides.items()) or default


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), sd


# --------------------------------------------------------------------------------------------
# Telco churn
# --------------------------------------------------------------------------------------------


def load_telco(path: Path) -> pd.DataFrame:
    """The Telco table with a 0/1 ``churned`` label, ``customerID`` dropped.

    ``TotalCharges`` is blank for the 11 customers with tenure 0 (nothing billed yet): missing,
    not zero, so the booster and the baseline's median imputation treat it as unknown.
    """
    require(path)
    raw = pd.read_csv(path, dtype={"TotalCharges": str})
    frame = raw.drop(columns=["customerID", "Churn"])
    charges = frame["TotalCharges"].str.strip()
    frame["TotalCharges"] = pd.to_numeric(charges.where(charges != ""))
    frame[TELCO_LABEL] = (raw["Churn"] == "Yes").astype(int)
    return frame


def with_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Telco plus three features a churn analyst would derive (row-wise, no label involved)."""
    derived = frame.copy()
    months = frame["tenure"].where(frame["tenure"] > 0)
    derived["average_monthly_charge"] = frame["TotalCharges"] / months
    # A price rise shows as a monthly charge above the average paid so far.
    derived["charge_above_average"] = frame["MonthlyCharges"] - derived["average_monthly_charge"]
    services = [
        "PhoneService",
        "MultipleLines",
        "OnlineSecurity",
        "OnlineBackup",
        "DeviceProtection",
        "TechSupport",
        "StreamingTV",
        "StreamingMovies",
    ]
    derived["services"] = sum((frame[s] == "Yes").astype(int) for s in services)
    return derived


def with_contract_months(frame: pd.DataFrame) -> pd.DataFrame:
    """Telco with ``Contract`` as its length in months, so a monotone constraint can apply."""
    months = frame["Contract"].map({"Month-to-month": 1, "One year": 12, "Two year": 24})
    return frame.drop(columns=["Contract"]).assign(contract_months=months)


def _categorical(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(c) for c in frame.columns if frame[c].dtype == object)


def _task(frame: pd.DataFrame, monotone: dict[str, int] | None = None) -> TabularTask:
    return TabularTask(TELCO_LABEL, _categorical(frame), monotone)


# Candidates of the inner CV: the pipeline's settings and slower, more regularised ones (STACK.md
# saw depth 4-5, learning rate 0.01-0.02 and strong l2 do best on Telco).
TUNING_GRID: tuple[dict[str, Any], ...] = (
    {},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 30.0},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 60.0},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 60.0, "depth": 5},
)


@dataclass(frozen=True)
class TelcoVariant:
    """One way to train the churn model on a Telco training fold.

    Attributes:
        name: What it is, in a few words.
        prepare: Row-wise feature preparation (no label, no other row involved).
        monotone: Monotone constraints of the booster.
        settings: Booster settings over the pipeline's defaults; ``None`` tunes them by inner CV.
    """

    name: str
    prepare: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame
    monotone: dict[str, int] | None = None
    settings: dict[str, Any] | None = None


TELCO_VARIANTS = (
    TelcoVariant("churn model, pipeline settings", settings={}),
    TelcoVariant("churn model, settings chosen by inner CV on the training fold", settings=None),
    TelcoVariant("pipeline settings + 3 derived features", with_derived_features, settings={}),
    TelcoVariant("inner-CV settings + 3 derived features", with_derived_features, settings=None),
    TelcoVariant(
        "inner-CV settings, contract in months; monotone: risk never rises with tenure or "
        "contract length",
        with_contract_months,
        {"tenure": -1, "contract_months": -1},
        settings=None,
    ),
)
HEADLINE_TELCO = TELCO_VARIANTS[1].name


def _telco_config(protocol: Protocol, overrides: dict[str, Any]) -> TrainingConfig:
    config = with_settings(TrainingConfig(), thread_count=protocol.threads, **overrides)
    return with_settings(config, iterations=protocol.rounds(config.boosting.iterations))


def _fit_variant(
    variant: TelcoVariant, train: pd.DataFrame, protocol: Protocol
) -> tuple[TabularModel, dict[str, Any]]:
    """The churn model of one variant on one training fold, and the settings it used."""
    task = _task(train, variant.monotone)
    if variant.settings is not None:
        config = _telco_config(protocol, variant.settings)
        return train_tabular_model(train, task, config), variant.settings
    grid = protocol.grid(TUNING_GRID)
    candidates = [_telco_config(protocol, overrides) for overrides in grid]
    choice = choose_config_by_cv(train, task, candidates, protocol.inner_folds, CV_SEED)
    chosen = grid[candidates.index(choice.config)]
    return train_tabular_model(train, task, choice.config), chosen


def telco(path: Path, protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """CV ROC AUC of the churn model variants and the one-hot LR baseline on the same folds."""
    frame = protocol.sample(load_telco(path))
    y = frame[TELCO_LABEL].to_numpy()
    folds = StratifiedKFold(protocol.folds, shuffle=True, random_state=CV_SEED)
    auc: dict[str, list[float]] = {v.name: [] for v in TELCO_VARIANTS}
    chosen: dict[str, list[dict[str, Any]]] = {v.name: [] for v in TELCO_VARIANTS}
    seconds: dict[str, float] = {v.name: 0.0 for v in TELCO_VARIANTS}
    lr_auc: list[float] = []
    features = [c for c in frame.columns if c != TELCO_LABEL]
    categorical = list(_categorical(frame))
    numeric = [c for c in features if c not in categorical]
    for fold, (train_idx, test_idx) in enumerate(folds.split(frame, y), start=1):
        for variant in TELCO_VARIANTS:  # a handful of variants, each one fit per fold
            started = time.perf_counter()
            prepared = variant.prepare(frame)
            model, settings = _fit_variant(variant, prepared.iloc[train_idx], protocol)
            proba = model.predict_proba(prepared.iloc[test_idx])
            auc[variant.name].append(float(roc_auc_score(y[test_idx], proba)))
            chosen[variant.name].append(settings)
            seconds[variant.name] += time.perf_counter() - started
        baseline = one_hot_logistic_regression(categorical, numeric)
        baseline.fit(lr_inputs(frame.iloc[train_idx], categorical, numeric), y[train_idx])
        lr_proba = baseline.predict_proba(lr_inputs(frame.iloc[test_idx], categorical, numeric))
        lr_auc.append(float(roc_auc_score(y[test_idx], lr_proba[:, 1])))
        progress.say(
            f"telco fold {fold}/{protocol.folds}: churn model {auc[HEADLINE_TELCO][-1]:.4f}, "
            f"LR {lr_auc[-1]:.4f}"
        )
    variants = {}
    for variant in TELCO_VARIANTS:
        mean, sd = _mean_sd(auc[variant.name])
        variants[variant.name] = {
            "cv_auc": mean,
            "cv_auc_sd": sd,
            "cv_auc_folds": [round(a, 4) for a in auc[variant.name]],
            "settings_per_fold": chosen[variant.name],
            "seconds": round(seconds[variant.name], 1),
        }
    lr_mean, lr_sd = _mean_sd(lr_auc)
    headline = variants[HEADLINE_TELCO]
    return {
        "rows": len(frame),
        "churn_rate": round(float(y.mean()), 4),
        "cv": f"{protocol.folds}-fold stratified, shuffled, random_state {CV_SEED}",
        "model": HEADLINE_TELCO,
        "cv_auc": headline["cv_auc"],
        "cv_auc_sd": headline["cv_auc_sd"],
        "lr_cv_auc": lr_mean,
        "lr_cv_auc_sd": lr_sd,
        "lr_cv_auc_folds": [round(a, 4) for a in lr_auc],
        "tuning_grid": [flat_params(with_settings(TrainingConfig(), **g)) for g in TUNING_GRID],
        "variants": variants,
    }


# --------------------------------------------------------------------------------------------
# Leads (X Education)
# --------------------------------------------------------------------------------------------


def leads(data: Path, protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """CV ROC AUC of the lead model and the LR baseline, after-contact columns dropped."""
    mapping = lead_mapping(X_EDUCATION_MAPPING)
    kept = [c for c in LEADS_AFTER_CONTACT if c not in mapping.drop]
    if kept:
        raise SystemExit(f"{X_EDUCATION_MAPPING} does not drop {kept}: they leak the outcome")
    training, _ = lead_training_frame(load_x_education(data, mapping))
    training = protocol.sample(training)
    config = with_settings(LeadConfig(), thread_count=protocol.threads)
    config = with_settings(config, iterations=protocol.rounds(config.boosting.iterations))
    progress.say(f"leads: {len(training)} leads, {protocol.folds}-fold CV")
    result = cross_validate(training, config, protocol.folds)
    return {
        "rows": len(training),
        **{
            key: result[key]
            for key in (
                "cv_auc",
                "cv_auc_sd",
                "cv_auc_folds",
                "lr_cv_auc",
                "lr_cv_auc_sd",
                "lr_cv_auc_folds",
                "features",
                "fit_seconds_per_fold",
            )
        },
        "excluded_columns": {c: mapping.drop[c] for c in mapping.drop},
    }


# --------------------------------------------------------------------------------------------
# Hillstrom uplift
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitScores:
    """One split's test rows (positions in the whole data set) and a learner's uplift on them."""

    test_rows: np.ndarray
    uplift: np.ndarray


def mean_uplift_interval(
    outcome: np.ndarray,
    treatment: np.ndarray,
    splits: Sequence[SplitScores],
    k: float = UPLIFT_K,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of uplift@k averaged over splits, resampling customers.

    Each resample draws the customers of the whole data set with replacement; a split's test set
    is then its customers as drawn (one drawn twice counts twice), ranked by that split's fixed
    model. The test sets of different splits overlap (each holds 30% of the same customers), so
    resampling each split on its own would treat them as independent and give too narrow an
    interval; drawing customers once per resample keeps the overlap. Refitting noise is not in
    it: the models are fixed, as in ``ml.modelling.uplift.bootstrap_uplift_at_k``.

    Args:
        outcome: 0/1 outcome of every customer of the data set.
        treatment: 0/1 arm of every customer.
        splits: Per split, its test rows and the predicted uplift on them.
        k: Fraction targeted.
        n_boot: Resamples.
        confidence: Coverage.
        seed: Seed of the resampling.

    Returns:
        Lower and upper bound.
    """
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for b in range(n_boot):  # resamples; each is a few vectorised uplift@k evaluations
        drawn = np.bincount(rng.integers(0, len(outcome), len(outcome)), minlength=len(outcome))
        per_split = []
        for split in splits:
            rows = np.repeat(np.arange(len(split.test_rows)), drawn[split.test_rows])
            picked = split.test_rows[rows]
            per_split.append(uplift_at_k(outcome[picked], split.uplift[rows], treatment[picked], k))
        means[b] = np.mean(per_split)
    alpha = 1.0 - confidence
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


# Candidates of the inner CV: the pipeline's two learners and two shallower T-learners (uplift is
# a small difference of two noisy probabilities, which deep trees fit noise into).
UPLIFT_GRID: tuple[dict[str, Any], ...] = (
    {},
    {"learner": "x"},
    {"depth": 2},
    {"depth": 3, "iterations": 200, "learning_rate": 0.03, "l2_leaf_reg": 20.0},
)
# Learner settings over the pipeline's UpliftConfig; None chooses among UPLIFT_GRID by inner CV.
UPLIFT_VARIANTS: dict[str, dict[str, Any] | None] = {
    "T-learner, pipeline settings": UPLIFT_GRID[0],
    "X-learner, pipeline settings": UPLIFT_GRID[1],
    "T-learner, depth 2": UPLIFT_GRID[2],
    "T-learner, depth 3, 200 rounds, learning rate 0.03, l2 20": UPLIFT_GRID[3],
    "learner chosen by inner CV (Qini) on the training split": None,
}
PIPELINE_UPLIFT = "T-learner, pipeline settings"
HEADLINE_UPLIFT = "learner chosen by inner CV (Qini) on the training split"


def _uplift_config(protocol: Protocol, seed: int, overrides: dict[str, Any]) -> UpliftConfig:
    config = with_settings(UpliftConfig(), thread_count=protocol.threads, seed=seed, **overrides)
    return with_settings(config, iterations=protocol.rounds(config.boosting.iterations))


def _fit_uplift_variant(
    overrides: dict[str, Any] | None, train: pd.DataFrame, protocol: Protocol, seed: int
) -> tuple[UpliftModel, dict[str, Any]]:
    """One learner on one split's training rows, and the settings it used."""
    if overrides is not None:
        return fit_learner(train, _uplift_config(protocol, seed, overrides)), overrides
    grid = protocol.grid(UPLIFT_GRID)
    candidates = [_uplift_config(protocol, seed, g) for g in grid]
    choice = choose_uplift_config_by_cv(
        train[list(FEATURES)],
        train["treatment"].to_numpy(),
        train["visit"].to_numpy(),
        candidates,
        CAT_FEATURES,
        protocol.inner_folds,
        CV_SEED,
    )
    chosen = grid[candidates.index(choice.config)]
    return fit_learner(train, choice.config), chosen


def hillstrom(data: Path, protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """uplift@30% and Qini per learner, mean over the split seeds, with intervals."""
    frame = load_hillstrom(data)
    frame = protocol.sample(frame).reset_index(drop=True)
    frame["row"] = np.arange(len(frame))
    outcome, treatment = frame["visit"].to_numpy(), frame["treatment"].to_numpy()
    scores: dict[str, list[SplitScores]] = {name: [] for name in UPLIFT_VARIANTS}
    per_split: dict[str, list[dict[str, Any]]] = {name: [] for name in UPLIFT_VARIANTS}
    random_ranking = []
    for seed in protocol.hillstrom_seeds:
        train, test = split_train_test(frame, seed)
        y, t = test["visit"].to_numpy(), test["treatment"].to_numpy()
        for name, overrides in UPLIFT_VARIANTS.items():  # a few learners
            started = time.perf_counter()
            model, settings = _fit_uplift_variant(overrides, train, protocol, seed)
            predicted = model.predict_uplift(test)
            interval = bootstrap_uplift_at_k(
                y, predicted, t, k=UPLIFT_K, n_boot=protocol.n_boot, seed=seed
            )
            scores[name].append(SplitScores(test["row"].to_numpy(), predicted))
            per_split[name].append(
                {
                    "seed": seed,
                    "uplift_at_30": interval.estimate,
                    "uplift_at_30_ci": [interval.low, interval.high],
                    "qini": qini_coefficient(y, predicted, t),
                    "settings": settings,
                    "fit_seconds": round(time.perf_counter() - started, 1),
                }
            )
        random_score = np.random.default_rng(seed).random(len(test))
        random_ranking.append(uplift_at_k(y, random_score, t, k=UPLIFT_K))
        pipeline, chosen = per_split[PIPELINE_UPLIFT][-1], per_split[HEADLINE_UPLIFT][-1]
        progress.say(
            f"hillstrom split {seed}: uplift@30% pipeline T-learner "
            f"{pipeline['uplift_at_30']:.4f}, inner-CV choice {chosen['uplift_at_30']:.4f} "
            f"({_settings_text(chosen['settings'], 'T-learner, pipeline settings')})"
        )
    learners = {}
    for name in UPLIFT_VARIANTS:
        uplifts = [s["uplift_at_30"] for s in per_split[name]]
        learners[name] = {
            "uplift_at_30": float(np.mean(uplifts)),
            "uplift_at_30_sd": _mean_sd(uplifts)[1],
            "uplift_at_30_ci": list(
                mean_uplift_interval(outcome, treatment, scores[name], n_boot=protocol.n_boot)
            ),
            "qini": float(np.mean([s["qini"] for s in per_split[name]])),
            "splits": per_split[name],
        }
    headline = learners[HEADLINE_UPLIFT]
    return {
        "rows": len(frame),
        "split": "70/30 stratified by treatment x visit, random_state "
        + ", ".join(str(s) for s in protocol.hillstrom_seeds),
        "interval": f"95% percentile bootstrap of the mean over splits ({protocol.n_boot} "
        "resamples, each drawing the customers once with replacement; each split's test set is "
        "its customers as drawn, ranked by that split's fixed model)",
        "learner": HEADLINE_UPLIFT,
        "uplift_at_30": headline["uplift_at_30"],
        "uplift_at_30_sd": headline["uplift_at_30_sd"],
        "uplift_at_30_ci": headline["uplift_at_30_ci"],
        "qini": headline["qini"],
        "random_ranking_uplift_at_30": float(np.mean(random_ranking)),
        "learners": learners,
    }


# --------------------------------------------------------------------------------------------
# CDNOW lifetime value
# --------------------------------------------------------------------------------------------


CLV_KEYS = (
    "customers",
    "catboost_protocol",
    "purchases_mae",
    "bgnbd_purchases_mae",
    "hybrid_purchases_mae",
    "value_mae",
    "bgnbd_value_mae",
    "hybrid_value_mae",
    "actual_purchases",
    "predicted_purchases",
    "bgnbd_predicted_purchases",
    "hybrid_predicted_purchases",
    "winner",
    "compare_seconds",
)
CDNOW_KEYS = ("bgnbd_level",)
"""CDNOW's extra figure: BG/NBD's total error in the training and the judged window."""
"""The CLV figures recorded per data set (``purchases_mae``, ``value_mae``: CatBoost's)."""


def _clv_config(config: ClvConfig, protocol: Protocol) -> ClvConfig:
    """``config`` with the protocol's bound on the rounds of CatBoost and of the hybrid."""
    config = with_settings(config, iterations=protocol.rounds(config.boosting.iterations))
    return replace(config, hybrid_iterations=protocol.rounds(config.hybrid_iterations))


def cdnow(data: Path, protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """Per-customer MAE of purchases and value: the project's CLV against BG/NBD + GG."""
    config = _clv_config(cdnow_config(protocol.threads), protocol)
    if protocol.rows is not None:  # a smoke run: fewer customers than out of time asks for
        config = replace(config, min_train_customers=min(config.min_train_customers, 20))
    progress.say("cdnow: BG/NBD + Gamma-Gamma, CatBoost and the hybrid, out of time (26 weeks)")
    result = compare_cdnow(data, config, customers=protocol.rows)
    return {key: result[key] for key in (*CLV_KEYS, *CDNOW_KEYS)}


def online_retail(data: Path, protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """The same figures on Online Retail, out of time (2011-06-30 + 162 days)."""
    config = _clv_config(online_retail_config(protocol.threads), protocol)
    if protocol.rows is not None:  # a smoke run: few customers are known a horizon earlier
        config = replace(config, min_train_customers=min(config.min_train_customers, 20))
    progress.say("online_retail: BG/NBD + Gamma-Gamma, CatBoost and the hybrid, out of time")
    result = compare_online_retail(data, config, customers=protocol.rows)
    return {key: result[key] for key in CLV_KEYS}


# --------------------------------------------------------------------------------------------
# Synthetic CRM
# --------------------------------------------------------------------------------------------


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():  # a few variables
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, remove) environment variables, and restore them afterwards."""
    before = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(before)


def _dbt_manifest() -> None:
    """Parse the dbt project when its manifest is missing, as ``make run`` does first."""
    from orchestration.resources import DBT_PROJECT_DIR

    if not (DBT_PROJECT_DIR / "target" / "manifest.json").is_file():
        dbt = Path(sys.executable).parent / "dbt"
        subprocess.run(
            [str(dbt), "parse", "--profiles-dir", ".", "--quiet"], cwd=DBT_PROJECT_DIR, check=True
        )


def synthetic(protocol: Protocol, progress: Progress) -> dict[str, Any]:
    """Out-of-time AUC and oracle AUC of ``models/churn`` on the default synthetic CRM.

    The pipeline's own assets up to ``models/churn`` (generate, ingest, every dbt model, checks,
    training, registration) run in process in a temporary ``CRM_HOME``, exactly as ``make run`` runs them;
    the figures are the asset's metadata.
    """
    _dbt_manifest()
    import dagster as dg

    from orchestration.definitions import defs as load_defs
    from orchestration.defs.transform.assets import crm_dbt_models

    customers = protocol.synthetic_customers
    with (
        tempfile.TemporaryDirectory(prefix="crm-quality-") as home,
        _environment(
            {
                "CRM_HOME": home,
                "CRM_SOURCE": None,
                "CRM_SYNTHETIC_SEED": None,
                "CRM_SYNTHETIC_CUSTOMERS": None if customers is None else str(customers),
                "CRM_THREADS": str(protocol.threads),
            }
        ),
    ):
        definitions = load_defs()
        job = definitions.resolve_job_def("retraining_job")
        # All of dbt, not only the models the churn model reads: a dbt test of a selected model can
        # read a model left out (relationships), and dbt build would then fail.
        selection = (
            dg.AssetSelection.assets(["models", "churn"]) | dg.AssetSelection.assets(crm_dbt_models)
        ).upstream()
        keys = selection.resolve(definitions.resolve_asset_graph())
        settings = Settings()
        progress.say(
            f"synthetic: {settings.synthetic_customers} customers, {len(keys)} assets up to "
            "models/churn, in process"
        )
        log = Path(home) / "run.log"
        with (
            dg.DagsterInstance.ephemeral() as instance,
            log.open("w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            result = job.execute_in_process(
                instance=instance,
                asset_selection=list(keys),
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
        if not result.success:
            raise RuntimeError(f"the pipeline failed on the synthetic CRM:\n{log.read_text()}")
        metadata = {
            event.materialization.asset_key.to_user_string(): event.materialization.metadata
            for event in result.get_asset_materialization_events()
        }["models/churn"]
    # Metadata values wrap plain numbers and text.
    figures: dict[str, Any] = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return {
        "customers": settings.synthetic_customers,
        "seed": settings.synthetic_seed,
        "how": "the pipeline's assets up to models/churn, run in process (dagster)",
        "auc": float(figures["roc_auc"]),
        "oracle_auc": float(figures["oracle_auc"]),
        "pr_auc": float(figures["pr_auc"]),
        "lift_top_decile": float(figures["lift_top_decile"]),
        "validation_rows": int(figures["validation_rows"]),
        "validation_as_of": str(figures["validation_as_of"]),
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _clv_targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 16's CLV target per data set recorded: the hybrid's purchases MAE below BG/NBD's."""
    out = {}
    for name in ("cdnow", "online_retail"):
        figures = report.get(name)
        if figures is None or "hybrid_purchases_mae" not in figures:
            continue
        hybrid, bgnbd = figures["hybrid_purchases_mae"], figures["bgnbd_purchases_mae"]
        out[f"{name}_hybrid"] = {
            "target": f"{name}.hybrid_purchases_mae < {name}.bgnbd_purchases_mae ({bgnbd:.4f})",
            "value": hybrid,
            "met": hybrid < bgnbd,
        }
    return out


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target of issues 6 and 16 with its figure and whether it is met."""
    auc = report["telco"]["cv_auc"]
    uplift = report["hillstrom"]["uplift_at_30"]
    low = report["hillstrom"]["uplift_at_30_ci"][0]
    return {
        "telco": {
            "target": f"telco.cv_auc >= {TELCO_TARGET_AUC}",
            "value": auc,
            "met": auc >= TELCO_TARGET_AUC,
        },
        "hillstrom": {
            "target": f"hillstrom.uplift_at_30 >= {HILLSTROM_TARGET_UPLIFT}",
            "value": uplift,
            "met": uplift >= HILLSTROM_TARGET_UPLIFT,
        },
        "hillstrom_interval": {
            "target": "hillstrom.uplift_at_30_ci lower bound > 0",
            "value": low,
            "met": low > 0,
        },
        **_clv_targets(report),
    }


def _machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory / 2**30),
        "gpu": None,
        "python": platform.python_version(),
    }


STAGES = ("telco", "leads", "hillstrom", "cdnow", "online_retail", "synthetic")


def recorded_path(path: Path) -> str:
    """`path` as a committed result records it: never an absolute path of this machine.

    Relative to the repository when it lies beside it (the default data folder is
    ``../shared/data``), else the folder's name alone.
    """
    resolved = path.resolve()
    if resolved.is_relative_to(ROOT.parent):
        return os.path.relpath(resolved, ROOT)
    return resolved.name


def run(data: Path, protocol: Protocol, stages: Sequence[str] = STAGES) -> dict[str, Any]:
    """The stages named, in turn; the report as written to ``quality.json``.

    Args:
        data: Folder of the public data sets.
        protocol: Sizes (:data:`FULL` or :data:`SMOKE`).
        stages: Which of :data:`STAGES` to run; targets are checked only if all ran.
    """
    require(*(data / PUBLIC_FILES[s] for s in stages if s in PUBLIC_FILES))
    progress = Progress()
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "telco": lambda: telco(data / TELCO_FILE, protocol, progress),
        "leads": lambda: leads(data, protocol, progress),
        "hillstrom": lambda: hillstrom(data, protocol, progress),
        "cdnow": lambda: cdnow(data, protocol, progress),
        "online_retail": lambda: online_retail(data, protocol, progress),
        "synthetic": lambda: (
            synthetic(protocol, progress)
            | synthetic_cbpe(protocol.synthetic_customers, protocol.threads)
        ),
    }
    report: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "protocol": asdict(protocol),
        "machine": _machine(),
        "versions": {
            pkg: version(pkg)
            for pkg in ("catboost", "scikit-learn", "pandas", "numpy", "pymc-marketing", "dagster")
        },
        "data": recorded_path(data),
    }
    seconds = {}
    for name in stages:
        started = time.perf_counter()
        report[name] = runners[name]()
        seconds[name] = round(time.perf_counter() - started, 1)
        progress.say(f"{name}: done in {seconds[name]:.1f} s")
    report["seconds"] = {**seconds, "total": round(progress.elapsed(), 1)}
    if set(stages) >= {"telco", "hillstrom"}:
        report["targets"] = targets(report)
    return report


def merge_stages(
    recorded: dict[str, Any], partial: dict[str, Any], stages: Sequence[str]
) -> dict[str, Any]:
    """The recorded report with ``stages`` replaced by those of a partial run of :func:`run`.

    The other stages keep their figures; ``updated`` names the stages rerun, when and with
    which versions, and the targets are checked again on the merged figures.
    """
    merged = {**recorded, **{name: partial[name] for name in stages}}
    seconds = {**recorded.get("seconds", {}), **{n: partial["seconds"][n] for n in stages}}
    # Stages in run order, then the recorded full run's total.
    merged["seconds"] = {name: seconds[name] for name in (*STAGES, "total") if name in seconds}
    merged["updated"] = {
        "stages": list(stages),
        "measured_at": partial["measured_at"],
        "versions": partial["versions"],
    }
    if {"telco", "hillstrom"} <= merged.keys():
        merged["targets"] = targets(merged)
    return merged


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _verdict(check: dict[str, Any]) -> str:
    return "met" if check["met"] else "**missed**"


def _paragraph(text: str) -> list[str]:
    """Prose wrapped at the repository's line length, then a blank line."""
    return [*textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False), ""]


def _settings_per_fold(settings: Sequence[dict[str, Any]], default: str) -> str:
    """Distinct settings with how many folds or splits chose each, most chosen first."""
    counts = Counter(_settings_text(one, default) for one in settings)
    return "; ".join(f"{text} ({n} of {len(settings)})" for text, n in counts.most_common())


def _interval(figures: dict[str, Any]) -> str:
    low, high = figures["uplift_at_30_ci"]
    return f"{_f(figures['uplift_at_30'])} [{_f(low)}, {_f(high)}]"


def render_section(report: dict[str, Any]) -> str:
    """The quality section of RESULTS.md, from a report of :func:`run`."""
    t, le, h, c, o, s = (
        report[k] for k in ("telco", "leads", "hillstrom", "cdnow", "online_retail", "synthetic")
    )
    checks, machine, versions = report["targets"], report["machine"], report["versions"]
    pipeline_uplift = h["learners"][PIPELINE_UPLIFT]
    lines = [SECTION_TITLE, ""]
    lines += _paragraph(
        f"`make bench-quality` → `results/quality.json`, measured {report['measured_at'][:10]} "
        f"in {report['seconds']['total'] / 60:.0f} min on {machine['cpus']} cores, "
        f"{machine['memory_gb']} GB, no GPU (catboost {versions['catboost']}, scikit-learn "
        f"{versions['scikit-learn']}, pymc-marketing {versions['pymc-marketing']}). Every figure "
        "comes from the project's `ml/` code on the public data in `../shared/data` "
        "(`CRM_PUBLIC_DATA`). Written by `benchmarks/quality.py`; do not edit by hand."
        + (
            f" Stages {', '.join(report['updated']['stages'])} rerun "
            f"{report['updated']['measured_at'][:10]} (`--stages`); the others keep their date."
            if "updated" in report
            else ""
        )
    )
    lines += [
        "| data | figure | project | baseline | target |",
        "|---|---|---|---|---|",
        f"| Telco churn ({t['rows']:,} customers) | ROC AUC, {t['cv']} CV, mean ± sd | "
        f"{_f(t['cv_auc'])} ± {_f(t['cv_auc_sd'])} | one-hot LR {_f(t['lr_cv_auc'])} ± "
        f"{_f(t['lr_cv_auc_sd'])} | ≥ {TELCO_TARGET_AUC:.3f}: {_verdict(checks['telco'])} "
        f"({_f(t['cv_auc'], 4)}) |",
        f"| X Education leads ({le['rows']:,}) | ROC AUC, same CV | {_f(le['cv_auc'])} ± "
        f"{_f(le['cv_auc_sd'])} | one-hot LR {_f(le['lr_cv_auc'])} ± {_f(le['lr_cv_auc_sd'])} "
        "| |",
        f"| Hillstrom ({h['rows']:,}; women's e-mail vs none, visit) | uplift@30%, mean of "
        f"{len(pipeline_uplift['splits'])} splits [95% interval] | {_interval(h)} (learner "
        f"chosen by inner CV); {_interval(pipeline_uplift)} (pipeline T-learner) | random "
        f"ranking {_f(h['random_ranking_uplift_at_30'])} | ≥ {HILLSTROM_TARGET_UPLIFT:.3f}: "
        f"{_verdict(checks['hillstrom'])} ({_f(h['uplift_at_30'], 4)}); interval above 0: "
        f"{_verdict(checks['hillstrom_interval'])} |",
        f"| Hillstrom | Qini coefficient, mean of the splits | {_f(h['qini'])} (inner CV); "
        f"{_f(pipeline_uplift['qini'])} (pipeline T-learner) | random ranking 0 | |",
        f"| CDNOW ({c['customers']:,} customers; 1997-12-30 + 182 days) | purchases MAE per "
        f"customer | hybrid {_f(c['hybrid_purchases_mae'])}; CatBoost {_f(c['purchases_mae'])} "
        f"(both {c['catboost_protocol'].replace('_', ' ')}) | "
        f"BG/NBD {_f(c['bgnbd_purchases_mae'])} | hybrid below BG/NBD: "
        f"{_verdict(checks['cdnow_hybrid'])} |",
        f"| CDNOW | value MAE per customer | hybrid {_f(c['hybrid_value_mae'], 2)}; CatBoost "
        f"{_f(c['value_mae'], 2)} | BG/NBD + Gamma-Gamma {_f(c['bgnbd_value_mae'], 2)} | |",
        f"| Online Retail ({o['customers']:,} customers; to 2011-06-30 + 162 days) | purchases "
        f"MAE per customer | hybrid {_f(o['hybrid_purchases_mae'])}; CatBoost "
        f"{_f(o['purchases_mae'])} (both {o['catboost_protocol'].replace('_', ' ')}) | BG/NBD "
        f"{_f(o['bgnbd_purchases_mae'])} | hybrid below BG/NBD: "
        f"{_verdict(checks['online_retail_hybrid'])} |",
        f"| Online Retail | value MAE per customer | hybrid {_f(o['hybrid_value_mae'], 2)}; "
        f"CatBoost {_f(o['value_mae'], 2)} | BG/NBD + Gamma-Gamma "
        f"{_f(o['bgnbd_value_mae'], 2)} | |",
        f"| synthetic default CRM ({s['customers']:,} customers) | churn ROC AUC, out of time "
        f"({s['validation_as_of']}, {s['validation_rows']:,} customers) | {_f(s['auc'])} | "
        f"oracle {_f(s['oracle_auc'])} | |",
        *(
            [
                f"| synthetic, a scoring run ({s['cbpe']['plain']['as_of']}) | churn ROC AUC "
                f"estimated without labels (CBPE) | {_f(s['cbpe']['plain']['roc_auc']['estimated'])}"
                f" | realized {_f(s['cbpe']['plain']['roc_auc']['realized'])} | error ≤ 0.02: "
                f"{s['cbpe_auc_abs_error'] <= 0.02} |",
                f"| same, covariate shift {s['cbpe']['shift']['covariate_shift']} | churn ROC AUC "
                f"estimated without labels (CBPE) | {_f(s['cbpe']['shift']['roc_auc']['estimated'])}"
                f" | realized {_f(s['cbpe']['shift']['roc_auc']['realized'])} | error ≤ 0.03: "
                f"{s['cbpe_auc_abs_error_shift'] <= 0.03} |",
            ]
            if "cbpe" in s
            else []
        ),
        "",
    ]
    lines += _paragraph(
        "Seconds per stage (wall time; more when other jobs share the machine): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items())
        + "."
    )
    lines += _paragraph(
        "**Telco churn.** `customerID` is dropped; `TotalCharges` is blank for the customers "
        "with tenure 0 and read as missing. The churn model is the pipeline's booster and "
        "calibration choice (`ml.models.churn.tabular.train_tabular_model`: `TrainingConfig`; a Platt map "
        "kept only if it lowers the out-of-fold Brier score on a held-out 20% of the training "
        'fold, the booster refitted on all of it otherwise). Settings "chosen by inner CV" are '
        f"picked per outer training fold by {FULL.inner_folds}-fold CV inside it "
        "(`ml.models.churn.tabular.choose_config_by_cv`) among the pipeline's settings and "
        f"{len(TUNING_GRID) - 1} slower, more regularised ones; the test fold is never seen. "
        "The derived features are `TotalCharges / tenure`, the monthly charge above that "
        "average and the number of services. What each variant gave on the same folds (set the "
        "differences between them against the fold-to-fold sd):"
    )
    lines += [
        "| variant | ROC AUC mean ± sd | settings chosen (over the pipeline's; folds) | s |",
        "|---|---|---|---|",
    ]
    for name, v in t["variants"].items():
        lines.append(
            f"| {name} | {_f(v['cv_auc'], 4)} ± {_f(v['cv_auc_sd'], 4)} | "
            f"{_settings_per_fold(v['settings_per_fold'], 'pipeline')} | {v['seconds']:.0f} |"
        )
    lines += [
        f"| one-hot logistic regression | {_f(t['lr_cv_auc'], 4)} ± {_f(t['lr_cv_auc_sd'], 4)} "
        "| | |",
        "",
    ]
    lines += _paragraph(
        f"**Hillstrom.** Splits: {h['split']}. Interval: {h['interval']}; the five test sets "
        "overlap, which a bootstrap per split would ignore. Learners are the pipeline's "
        "`UpliftConfig` with the changes named, seed = split seed. The inner CV "
        f"({FULL.inner_folds} folds of the training split, stratified by arm x visit, "
        "`ml.modelling.uplift.choose_uplift_config_by_cv`) chooses among the four fixed learners below "
        "by mean Qini; the fixed ones are shown for what they gave, none was chosen by its test "
        "figures."
    )
    lines += [
        "| learner | uplift@30% mean [95% interval] | per split | Qini | settings chosen |",
        "|---|---|---|---|---|",
    ]
    for name, learner in h["learners"].items():
        splits = " / ".join(_f(split["uplift_at_30"]) for split in learner["splits"])
        chosen = (
            _settings_per_fold([split["settings"] for split in learner["splits"]], "T, pipeline")
            if name == HEADLINE_UPLIFT
            else ""
        )
        lines.append(
            f"| {name} | {_interval(learner)} | {splits} | {_f(learner['qini'])} | {chosen} |"
        )
    lines.append("")
    lines += _paragraph(
        "**Leads.** The lead model's production path (`train_lead_model`: its own holdout and "
        "calibration choice in each training fold) on the X Education export loaded through "
        "`examples/x_education/mapping.yaml`. The mapping drops these columns (reasons "
        "quoted from it); the benchmark stops if it ever keeps one that sales fill in after "
        "contact:"
    )
    lines += [f"- `{column}`: {why}" for column, why in le["excluded_columns"].items()]
    lines.append("")
    lines += _paragraph(
        "**CDNOW.** Out of time in three 26-week windows of the 78 weeks (every customer joined "
        "in Q1 1997): CatBoost and the hybrid trained on the features at 1997-07-01 and the "
        "182 days after, judged at 1997-12-30 on the 182 days to 1998-06-30 against BG/NBD "
        "fitted on the orders up to 1997-12-30. BG/NBD's total purchase forecast error: "
        f"{c['bgnbd_level']['train_window_total_error_pct']:+.1f}% in the training window, "
        f"{c['bgnbd_level']['judged_window_total_error_pct']:+.1f}% in the judged one. "
        f"Winner (by value MAE): {c['winner']}. **Online Retail.** Out of time: CatBoost and the "
        "hybrid trained on the features at 2011-01-19 and the 162 days to 2011-06-30, the "
        "hybrid's BG/NBD + Gamma-Gamma features from a baseline fitted on the orders up to "
        f"2011-01-19 only. Winner (by value MAE, as the pipeline decides): {o['winner']}."
    )
    lines += _paragraph(
        "**Synthetic.** The pipeline's own assets up to `models/churn` (generate, ingest, every "
        "dbt model, checks, training and registration) run in process in a temporary "
        "`CRM_HOME`; the figures are the asset's metadata (validation on the newest labelled "
        "as-of date)."
    )
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the quality section of ``path``, or insert it before the first other section."""
    text = path.read_text()
    start = text.find(SECTION_TITLE)
    if start >= 0:
        following = text.find("\n## ", start + len(SECTION_TITLE))
        end = len(text) if following < 0 else following + 1
    else:
        start = end = text.index("\n## ") + 1
    path.write_text(text[:start] + section + ("\n" if end < len(text) else "") + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder of the public data sets")
    parser.add_argument("--threads", type=int, default=2, help="CatBoost threads")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the code runs")
    parser.add_argument("--output", type=Path, default=None, help="JSON report path")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="run only these stages and replace them in the recorded quality.json",
    )
    args = parser.parse_args()
    if args.smoke and args.output is None:
        parser.error("--smoke writes no recorded results: pass --output")

    protocol = replace(SMOKE if args.smoke else FULL, threads=args.threads)
    stages = [name for name in STAGES if name in args.stages]
    report = run(data_dir(args.data), protocol, stages)
    output = args.output or RESULTS_JSON
    if len(stages) < len(STAGES) and not args.smoke:
        report = merge_stages(json.loads(RESULTS_JSON.read_text()), report, stages)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {output}")
    if not args.smoke:
        write_section(RESULTS_MD, render_section(report))
        print(f"wrote the quality section of {RESULTS_MD}")
    for check in report.get("targets", {}).values():
        print(f"{check['target']}: {check['value']:.4f}, {'met' if check['met'] else 'missed'}")


if __name__ == "__main__":
    main()
