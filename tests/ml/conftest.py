"""Shared tiny feature frames for the churn model tests.

The frames have the columns of ``marts.customer_features`` joined with the label, built with numpy.
The label has a planted signal: churn rises with ``tickets_30d``, falls with ``logins_30d`` and is
much higher on month-to-month contracts, so model behaviour is testable in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.data.features import LABEL_COLUMN
from ml.modelling.boosting import BoostingParams
from ml.models.churn.model import ChurnModel, TrainingConfig, split_out_of_time, train_churn_model

# No network from tests: MLflow reads these before its telemetry client starts (at import).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

HORIZON_DAYS = 90  # the label window of the tiny frames
MONTHS: tuple[date, ...] = tuple(date(2025, m, 1) for m in range(1, 13))
FAST_CONFIG = TrainingConfig(
    boosting=BoostingParams(iterations=50, depth=4, l2_leaf_reg=10.0, one_hot_max_size=16),
    training_as_of_dates=4,
)

FrameFactory = Callable[..., pd.DataFrame]


def planted_logit(frame: pd.DataFrame) -> np.ndarray:
    """The true churn log-odds of the tiny world."""
    return (
        -2.0
        + 1.0 * frame["tickets_30d"].to_numpy(dtype=float)
        - 0.35 * frame["logins_30d"].to_numpy(dtype=float)
        + 2.0 * (frame["contract_type"] == "month-to-month").to_numpy(dtype=float)
    )


def make_feature_frame(
    customers_per_date: int = 800,
    as_of_dates: tuple[date, ...] = MONTHS,
    seed: int = 0,
    churn_shift: float = 0.0,
) -> pd.DataFrame:
    """Labelled feature rows: ``customers_per_date`` customers at every as-of date.

    Args:
        customers_per_date: Rows per as-of date (the same customer ids at every date).
        as_of_dates: The as-of dates.
        seed: Random seed.
        churn_shift: Added to the true log-odds (shifts the base rate, not the ranking).
    """
    rng = np.random.default_rng(seed)
    n = customers_per_date * len(as_of_dates)
    ids = np.tile(np.array([f"C{i:06d}" for i in range(customers_per_date)]), len(as_of_dates))
    as_of = np.repeat(np.array(as_of_dates, dtype="datetime64[us]"), customers_per_date)
    logins_30d = rng.poisson(6, n)
    logins_31_60d = rng.poisson(6, n)
    tickets_90d = rng.poisson(1.0, n)
    price = rng.choice([19.0, 29.0, 49.0], n)
    days_since_login = rng.integers(0, 60, n).astype(float)
    days_since_login[logins_30d > 0] = rng.integers(0, 30, int((logins_30d > 0).sum()))
    days_since_login[rng.random(n) < 0.05] = np.nan
    satisfaction = np.round(rng.uniform(1, 5, n), 1)
    satisfaction[tickets_90d == 0] = np.nan
    channel = rng.choice(np.array(["organic", "paid_search", "referral"], dtype=object), n)
    channel[rng.random(n) < 0.05] = None
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "as_of_date": as_of,
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "contract_type": rng.choice(
                ["month-to-month", "one-year", "two-year"], n, p=[0.5, 0.3, 0.2]
            ),
            "acquisition_channel": channel,
            "country_code": rng.choice(["DE", "FR", "NL", "unknown"], n),
            "tenure_days": rng.integers(90, 1500, n).astype("int32"),
            "monthly_price": price,
            "price_change_90d": np.where(rng.random(n) < 0.1, 10.0, 0.0),
            "plan_changes_365d": rng.poisson(0.3, n).astype("int32"),
            "downgrades_90d": rng.poisson(0.05, n).astype("int32"),
            "months_to_renewal": rng.integers(1, 25, n).astype("float64"),
            "logins_30d": logins_30d.astype("int32"),
            "logins_31_60d": logins_31_60d.astype("int32"),
            "login_trend": (logins_30d + 1) / (logins_31_60d + 1),
            "days_since_last_login": pd.array(
                np.where(np.isnan(days_since_login), 0, days_since_login).astype("int32"),
                dtype="Int32",
            ),
            "feature_uses_30d": rng.poisson(10, n).astype("int32"),
            "email_opens_30d": rng.poisson(3, n).astype("int32"),
            "email_clicks_30d": rng.poisson(1, n).astype("int32"),
            "pricing_page_visits_30d": rng.poisson(0.5, n).astype("int32"),
            "tickets_30d": np.minimum(tickets_90d, rng.poisson(0.6, n)).astype("int32"),
            "tickets_90d": tickets_90d.astype("int32"),
            "open_tickets": rng.poisson(0.2, n).astype("int32"),
            "avg_satisfaction_90d": satisfaction,
            "orders_90d": rng.poisson(0.5, n).astype("int32"),
            "order_value_90d": np.round(rng.gamma(2, 20, n), 2),
            "days_since_last_order": pd.array(rng.integers(1, 400, n), dtype="Int32"),
        }
    )
    # Nullable integer columns with nulls, as DuckDB returns them.
    frame.loc[np.isnan(days_since_login), "days_since_last_login"] = pd.NA
    frame.loc[rng.random(n) < 0.3, "days_since_last_order"] = pd.NA
    p = 1.0 / (1.0 + np.exp(-(planted_logit(frame) + churn_shift)))
    frame[LABEL_COLUMN] = rng.random(n) < p
    return frame


@pytest.fixture(scope="session")
def feature_frame() -> pd.DataFrame:
    """12 monthly as-of dates x 800 customers with a planted churn signal."""
    return make_feature_frame()


@pytest.fixture(scope="session")
def make_frame() -> FrameFactory:
    """The frame builder, for tests that need another size, seed or base rate."""
    return make_feature_frame


@pytest.fixture(scope="session")
def months() -> tuple[date, ...]:
    """The 12 monthly as-of dates of ``feature_frame`` (2025)."""
    return MONTHS


@pytest.fixture(scope="session")
def fast_config() -> TrainingConfig:
    """A training config that fits in well under a second on the tiny frames."""
    return FAST_CONFIG


@pytest.fixture(scope="session")
def true_logit() -> Callable[[pd.DataFrame], np.ndarray]:
    """The planted churn log-odds (the oracle score of the tiny world)."""
    return planted_logit


@pytest.fixture(scope="session")
def trained_model(feature_frame: pd.DataFrame) -> ChurnModel:
    """A small model (50 iterations) trained on the planted-signal frame."""
    split = split_out_of_time(
        feature_frame, FAST_CONFIG.training_as_of_dates, horizon_days=HORIZON_DAYS
    )
    return train_churn_model(split, FAST_CONFIG)
