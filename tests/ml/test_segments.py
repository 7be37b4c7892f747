"""Behavioural segments: recovery of planted groups, stable labels and names, profiles, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from ml.models.segments.model import (
    CUSTOMER_SEGMENTS_COLUMNS,
    NEVER_ACTIVE_DAYS,
    PROFILE_COLUMNS,
    SegmentConfig,
    SegmentModel,
    assign_segments,
    behaviour_matrix,
    fit_segments,
    profile,
    segment_names,
)

# price, order value 90d, orders 90d, logins per 30d, feature uses, e-mail clicks,
# days since last login, tenure days, churn probability
GROUPS: dict[str, tuple[float, ...]] = {
    "high": (99.0, 900.0, 6, 25, 60, 6, 1, 1000, 0.03),
    "mid": (29.0, 60.0, 1, 8, 10, 1, 5, 400, 0.10),
    "dormant": (19.0, 0.0, 0, 0, 0, 0, 120, 500, 0.55),
}
THREE = SegmentConfig(n_segments=3, seed=0)


def planted_frame(sizes: tuple[int, int, int] = (40, 120, 40), seed: int = 0) -> pd.DataFrame:
    """Three clear groups (high value, mainstream, dormant) with noise; ``group`` is the truth."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.array(list(GROUPS), dtype=object), sizes)
    n = len(group)
    spec = np.array([GROUPS[g] for g in group])

    def jitter(values: np.ndarray, spread: float = 0.2) -> np.ndarray:
        return np.clip(values * rng.normal(1.0, spread, n), 0, None)

    login_days = np.round(jitter(spec[:, 6]))
    # Some dormant customers never logged in; nobody without orders has an order date.
    login_days[(group == "dormant") & (rng.random(n) < 0.4)] = np.nan
    order_days = np.where(spec[:, 2] > 0, np.round(rng.uniform(1, 60, n)), np.nan)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in rng.permutation(n)],
            "as_of_date": np.datetime64("2025-06-01", "us"),
            "tenure_days": np.round(jitter(spec[:, 7])).astype("int32"),
            "monthly_price": spec[:, 0],
            "logins_30d": rng.poisson(spec[:, 3]).astype("int32"),
            "logins_31_60d": rng.poisson(spec[:, 3]).astype("int32"),
            "days_since_last_login": pd.array(login_days, dtype="Int32"),
            "feature_uses_30d": rng.poisson(spec[:, 4]).astype("int32"),
            "email_clicks_30d": rng.poisson(spec[:, 5]).astype("int32"),
            "orders_90d": rng.poisson(spec[:, 2]).astype("int32"),
            "order_value_90d": np.round(jitter(spec[:, 1]), 2),
            "days_since_last_order": pd.array(order_days, dtype="Int32"),
            "churn_probability": np.clip(jitter(spec[:, 8]), 0, 1),
            "group": group,
        }
    )


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return planted_frame()


@pytest.fixture(scope="module")
def three(planted: pd.DataFrame) -> SegmentModel:
    return fit_segments(planted, THREE)


def by_customer(assigned: pd.DataFrame) -> pd.Series:
    return assigned.set_index("customer_id")["segment_id"].sort_index()


def test_planted_groups_are_recovered_and_named(planted: pd.DataFrame, three: SegmentModel) -> None:
    assigned = assign_segments(three, planted)

    assert list(assigned.columns) == list(CUSTOMER_SEGMENTS_COLUMNS)
    crosstab = pd.crosstab(planted["group"], assigned["segment_id"])
    # Every planted group is exactly one segment and every segment one group.
    assert ((crosstab > 0).sum(axis=1) == 1).all()
    assert ((crosstab > 0).sum(axis=0) == 1).all()
    name_of = dict(zip(planted["group"], assigned["segment_name"], strict=True))
    id_of = dict(zip(planted["group"], assigned["segment_id"], strict=True))
    assert "High-value" in name_of["high"]
    assert "Dormant" in name_of["dormant"]
    assert "at risk" in name_of["dormant"]
    assert "Dormant" not in name_of["mid"] and "High-value" not in name_of["mid"]
    # Segments are ordered by value: the high-value group is segment 1, the dormant one last.
    assert id_of["high"] == 1
    assert id_of["dormant"] == 3
    assert len(set(name_of.values())) == 3


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_ids_and_names_do_not_depend_on_kmeans_numbering(
    planted: pd.DataFrame, three: SegmentModel, seed: int
) -> None:
    # Another KMeans seed numbers the clusters differently; the ordered result is the same.
    other = fit_segments(planted, SegmentConfig(n_segments=3, seed=seed))

    assert other.segment_names == three.segment_names
    pd.testing.assert_series_equal(
        by_customer(assign_segments(other, planted)), by_customer(assign_segments(three, planted))
    )


def test_same_seed_and_data_give_identical_models_and_labels(planted: pd.DataFrame) -> None:
    config = SegmentConfig(n_segments=5, seed=11)
    first, second = fit_segments(planted, config), fit_segments(planted, config)

    assert first.to_dict() == second.to_dict()
    pd.testing.assert_frame_equal(assign_segments(first, planted), assign_segments(second, planted))


@pytest.mark.parametrize("n_segments", [3, 5])
def test_row_order_does_not_change_any_customers_segment(
    planted: pd.DataFrame, n_segments: int
) -> None:
    config = SegmentConfig(n_segments=n_segments, seed=3)
    shuffled = planted.sample(frac=1.0, random_state=123).reset_index(drop=True)

    model, shuffled_model = fit_segments(planted, config), fit_segments(shuffled, config)

    assert shuffled_model.to_dict() == model.to_dict()
    pd.testing.assert_series_equal(
        by_customer(assign_segments(shuffled_model, shuffled)),
        by_customer(assign_segments(model, planted)),
    )


@pytest.mark.parametrize("n_segments", [3, 4, 5, 6, 8])
def test_names_are_unique(planted: pd.DataFrame, n_segments: int) -> None:
    model = fit_segments(planted, SegmentConfig(n_segments=n_segments, seed=0))

    assert len(set(model.segment_names)) == n_segments == model.n_segments
    assert model.segment_ids == tuple(range(1, n_segments + 1))


def test_identical_segments_still_get_unique_names() -> None:
    middle = np.full((3, 5), 0.5)
    assert segment_names(middle) == ["Mainstream", "Mainstream 2", "Mainstream 3"]
    # Two dormant groups differing only in tenure are told apart by it.
    dormant = np.array([[0.05, 0.55, 0.5, 0.5, 0.5], [0.05, 0.45, 0.5, 0.5, 0.5]])
    assert segment_names(dormant) == ["Dormant (longer tenure)", "Dormant (shorter tenure)"]


def test_profile_sizes_shares_and_averages(planted: pd.DataFrame, three: SegmentModel) -> None:
    assigned = assign_segments(three, planted)
    table = profile(three, assigned, planted)

    assert list(table.columns) == list(PROFILE_COLUMNS)
    assert table["segment_id"].tolist() == [1, 2, 3]
    assert table["customers"].sum() == len(planted)
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["segment_name"].tolist() == list(three.segment_names)
    joined = planted.assign(segment_id=assigned["segment_id"].to_numpy())
    top = joined[joined["segment_id"] == 1]
    row = table.iloc[0]
    assert row["avg_churn_probability"] == pytest.approx(top["churn_probability"].mean())
    assert row["avg_logins_30d"] == pytest.approx(top["logins_30d"].mean())
    assert row["avg_monthly_value"] == pytest.approx(
        (top["monthly_price"] + top["order_value_90d"] / 3).mean()
    )
    # The dormant segment carries the highest churn risk and the lowest value.
    assert table["avg_churn_probability"].idxmax() == table["avg_monthly_value"].idxmin()
    for name, description in zip(table["segment_name"], table["description"], strict=True):
        assert description.startswith(name + ": ")
    share = f"{len(top)} customers ({100 * len(top) / len(planted):.1f}%)"
    assert share in table["description"].iloc[0]


def test_profile_keeps_segments_nobody_was_assigned_to(
    planted: pd.DataFrame, three: SegmentModel
) -> None:
    assigned = assign_segments(three, planted)
    only_top = assigned[assigned["segment_id"] == 1]

    table = profile(three, only_top, planted)

    assert table["customers"].tolist() == [len(only_top), 0, 0]
    assert table["share"].tolist() == [1.0, 0.0, 0.0]
    assert table["description"].iloc[1].startswith(three.segment_names[1] + ": 0 customers")


def test_recency_nulls_are_never_active(planted: pd.DataFrame, three: SegmentModel) -> None:
    frame = planted.head(4).copy()
    frame["days_since_last_login"] = pd.array([None, 10, None, 400], dtype="Int32")
    frame["days_since_last_order"] = pd.array([None, None, 3, 5000], dtype="Int32")

    recency = np.expm1(behaviour_matrix(frame)[:, 0])

    # Most recent of the two; neither on record or older than the cap -> the "never" value.
    np.testing.assert_allclose(recency, [NEVER_ACTIVE_DAYS, 10, 3, 400])
    assigned = assign_segments(three, frame)
    assert assigned["segment_id"].notna().all()

    never = planted[planted["group"] == "dormant"].head(5).copy()
    never["days_since_last_login"] = pd.array([None] * 5, dtype="Int32")
    assert set(assign_segments(three, never)["segment_name"]) == {three.segment_names[-1]}


def test_model_round_trips_through_json_without_customer_data(
    planted: pd.DataFrame, three: SegmentModel
) -> None:
    text = json.dumps(three.to_dict())
    restored = SegmentModel.from_dict(json.loads(text))

    assert restored == three
    assert "C0" not in text
    pd.testing.assert_frame_equal(
        assign_segments(restored, planted), assign_segments(three, planted)
    )


def test_silhouette_picks_the_planted_number_of_groups(planted: pd.DataFrame) -> None:
    # Never-logged-in customers form a fourth natural group; give them a login to keep three.
    three_groups = planted.assign(
        days_since_last_login=planted["days_since_last_login"].fillna(120)
    )
    model = fit_segments(
        three_groups, SegmentConfig(n_segments=None, candidate_segments=(2, 3, 4, 5), seed=0)
    )

    assert model.n_segments == 3
    assert model.silhouette is not None and model.silhouette > 0.5


def test_fit_sample_is_deterministic(planted: pd.DataFrame) -> None:
    config = SegmentConfig(n_segments=3, seed=0, max_fit_rows=100)
    model = fit_segments(planted, config)

    assert model.fitted_rows == 100
    assert model.to_dict() == fit_segments(planted.iloc[::-1], config).to_dict()
    assert len(assign_segments(model, planted)) == len(planted)


def _without(column: str) -> pd.DataFrame:
    return planted_frame().drop(columns=column)


def _with_null(column: str) -> pd.DataFrame:
    frame = planted_frame()
    frame[column] = frame[column].astype("float64")
    frame.loc[0, column] = np.nan
    return frame


def _duplicated() -> pd.DataFrame:
    frame = planted_frame()
    frame["customer_id"] = frame["customer_id"].where(frame.index != 1, frame["customer_id"][0])
    return frame


def _churn_above_one() -> pd.DataFrame:
    frame = planted_frame()
    frame.loc[0, "churn_probability"] = 1.5
    return frame


def _all_the_same() -> pd.DataFrame:
    frame = planted_frame().head(10)
    return pd.concat([frame.head(1)] * 10, ignore_index=True).assign(
        customer_id=[f"X{i}" for i in range(10)]
    )


@pytest.mark.parametrize(
    ("build", "config", "message"),
    [
        (lambda: _without("order_value_90d"), THREE, r"lacks columns \['order_value_90d'\]"),
        (lambda: _without("churn_probability"), THREE, "churn_probability"),
        (lambda: planted_frame().head(0), THREE, "is empty"),
        (lambda: planted_frame().head(2), THREE, "2 rows, fewer than the 3 segments"),
        (_duplicated, THREE, "1 duplicate customer_id"),
        (lambda: _with_null("logins_30d"), THREE, "logins_30d has 1 null"),
        (_churn_above_one, THREE, r"outside \[0, 1\]"),
        (_all_the_same, THREE, "only 1 distinct customer behaviours"),
    ],
)
def test_bad_training_input_raises(
    build: Callable[[], pd.DataFrame], config: SegmentConfig, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_segments(build(), config)


def test_bad_assignment_input_raises(three: SegmentModel) -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['as_of_date'\]"):
        assign_segments(three, _without("as_of_date"))
    with pytest.raises(ValueError, match="is empty"):
        assign_segments(three, planted_frame().head(0))


def test_profile_rejects_customers_without_features(
    planted: pd.DataFrame, three: SegmentModel
) -> None:
    assigned = assign_segments(three, planted)
    with pytest.raises(ValueError, match="3 assigned customers have no row"):
        profile(three, assigned, planted.iloc[3:])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_segments": 1}, "n_segments must be >= 2"),
        ({"n_segments": None, "candidate_segments": ()}, "candidate_segments"),
        ({"n_init": 0}, "n_init"),
    ],
)
def test_bad_config_raises(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentConfig(**settings)  # type: ignore[arg-type]


def test_two_dormant_segments_are_told_apart_by_what_differs(planted: pd.DataFrame) -> None:
    # With four segments the dormant group splits into never-logged-in and lapsed customers.
    model = fit_segments(planted, SegmentConfig(n_segments=4, seed=0))
    assigned = assign_segments(model, planted)
    dormant = assigned[planted["group"].to_numpy() == "dormant"]
    never = planted["days_since_last_login"].isna().to_numpy()[dormant.index]

    names = set(dormant["segment_name"])
    assert names == {"Dormant, at risk (less active)", "Dormant, at risk (more active)"}
    assert set(dormant.loc[never, "segment_name"]) == {"Dormant, at risk (less active)"}
