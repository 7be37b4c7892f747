"""CLV summaries, the BG/NBD + Gamma-Gamma baseline and the CatBoost comparison on tiny frames.

The RFM and holdout values were computed by hand. The baseline tests use a population simulated
from BG/NBD and Gamma-Gamma with known parameters; the comparison tests plant a value that only
a caller feature (a tier) reveals, so CatBoost must win out of time, and a drift that only the
flattering customer split hides, so the out-of-time backtest must overrule it. Orders without
amounts, or with one amount on every order, must give purchases and probability alive and no
value at all, with the reason.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.boosting import BoostingParams
from ml.models.customer_value.model import (
    HYBRID_EXCLUDED,
    HYBRID_RATE_FEATURES,
    NO_AMOUNTS,
    PREDICTION_COLUMNS,
    Backtest,
    BaselineModel,
    ClvConfig,
    ClvScores,
    baseline_features,
    compare_on_holdout,
    decide_winner,
    fit_baseline,
    fit_clv,
    history_features,
    holdout_actuals,
    hybrid_design,
    pick_winner,
    plot_clv_holdout,
    predict_clv,
    rfm_summary,
    score_predictions,
    value_unavailable_reason,
)

CUTOFF = pd.Timestamp("2024-02-11")
FAST = ClvConfig(boosting=BoostingParams(iterations=60, depth=3, learning_rate=0.2, seed=7))
# The windowed world needs a patient learner: 60 iterations at 0.2 did not separate the planted
# tier from the drift of cumulative counts on every seed; 300 at 0.05 did on seeds 1-5. These
# tests judge CatBoost against the baseline alone; the hybrid has its own below.
OUT_OF_TIME = ClvConfig(
    boosting=BoostingParams(iterations=300, depth=4, learning_rate=0.05, seed=7),
    horizon_days=91,
    hybrid=False,
)
TRUE_BGNBD = {"r": 0.8, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def _orders(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "ordered_at": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [r[2] for r in rows],
        }
    )


@pytest.fixture
def orders() -> pd.DataFrame:
    return _orders(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 17:30", 5.0),  # same day: one purchase of 15
            ("a", "2024-01-15 12:00", 20.0),
            ("a", "2024-01-29 08:00", 30.0),
            ("a", "2024-03-01 10:00", 99.0),  # after the cutoff
            ("a", "2024-03-01 11:00", 1.0),  # same day in the holdout
            ("a", "2024-04-01 10:00", 50.0),  # after a 30-day holdout
            ("b", "2024-02-04 23:59", 12.0),  # one-time buyer
            ("b", "2024-02-20 10:00", 8.0),
            ("c", "2024-02-12 00:01", 40.0),  # first order after the cutoff
        ]
    )


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("period_days", [7.0, 1.0])
def test_rfm_summary_matches_hand_computed_values(orders: pd.DataFrame, period_days: float) -> None:
    summary = rfm_summary(orders, CUTOFF, period_days=period_days).set_index("customer_id")

    assert list(summary.index) == ["a", "b"]  # c first bought after the cutoff
    a, b = summary.loc["a"], summary.loc["b"]
    # a: purchase days Jan 1 (15), Jan 15 (20), Jan 29 (30); the cutoff is 41 days after Jan 1.
    assert a["frequency"] == 2
    assert a["recency"] == pytest.approx(28 / period_days)
    assert a["T"] == pytest.approx(41 / period_days)
    assert a["monetary_value"] == pytest.approx(25.0)  # repeat purchases only
    # b: one purchase on Feb 4, 7 days before the cutoff.
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0.0, 0.0)
    assert b["T"] == pytest.approx(7 / period_days)


def test_rfm_summary_counts_an_order_late_on_the_cutoff_day() -> None:
    orders = _orders([("a", "2024-02-01", 5.0), ("a", "2024-02-11 23:59", 7.0)])

    summary = rfm_summary(orders, CUTOFF, period_days=1.0)

    assert summary["frequency"].tolist() == [1]
    assert summary["monetary_value"].tolist() == [7.0]


def test_history_features_add_recent_and_total_value(orders: pd.DataFrame) -> None:
    features = history_features(orders, CUTOFF).set_index("customer_id")

    assert features.loc["a", "days_since_last_purchase"] == 13  # Jan 29 -> Feb 11
    assert features.loc["a", "total_value"] == pytest.approx(65.0)
    assert features.loc["a", "first_purchase_value"] == pytest.approx(15.0)
    assert features.loc["a", "max_purchase_value"] == pytest.approx(30.0)
    assert features.loc["a", "purchases_last_90d"] == 3
    assert features.loc["b", "value_last_90d"] == pytest.approx(12.0)


def test_holdout_actuals_counts_purchase_days_in_the_window(orders: pd.DataFrame) -> None:
    actuals = holdout_actuals(orders, CUTOFF, horizon_days=30).set_index("customer_id")

    assert list(actuals.index) == ["a", "b"]
    # a: Mar 1 twice (one purchase of 100); Apr 1 is 50 days after the cutoff.
    assert actuals.loc["a"].tolist() == [1, 100.0]
    assert actuals.loc["b"].tolist() == [1, 8.0]


def test_negative_amounts_are_rejected(orders: pd.DataFrame) -> None:
    orders.loc[0, "amount"] = -3.0

    with pytest.raises(ValueError, match="negative"):
        rfm_summary(orders, CUTOFF)


# --------------------------------------------------------------------------------------------
# Baseline on a population simulated from BG/NBD and Gamma-Gamma
# --------------------------------------------------------------------------------------------


def _simulate(n: int, weeks: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """An RFM summary drawn from BG/NBD + Gamma-Gamma, and each customer's purchase rate."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], n)
    dropout = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    big_t = rng.uniform(weeks / 2, weeks, n)  # first purchases spread over the first half
    t, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():  # one step per repeat purchase, all customers at once
        t = t + rng.exponential(1.0 / rate)
        alive &= t <= big_t
        x = np.where(alive, x + 1, x)
        t_x = np.where(alive, t, t_x)
        alive &= rng.random(n) >= dropout  # dropout only right after a repeat purchase
    spend_rate = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    # The mean of x draws of Gamma(p, spend_rate) is Gamma(p * x, x * spend_rate).
    mean_spend = rng.gamma(TRUE_GG["p"] * np.maximum(x, 1), 1.0 / (np.maximum(x, 1) * spend_rate))
    summary = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "frequency": x.astype(int),
            "recency": t_x,
            "T": big_t,
            "monetary_value": np.where(x > 0, mean_spend, 0.0),
        }
    )
    return summary, rate


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, np.ndarray, BaselineModel]:
    summary, rate = _simulate(3000, weeks=52.0, seed=3)
    return summary, rate, fit_baseline(summary)


def test_baseline_recovers_the_simulated_parameters(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    _, _, model = simulated

    fitted = {"r": model.bgnbd.r, "alpha": model.bgnbd.alpha, "a": model.bgnbd.a}
    fitted["b"] = model.bgnbd.b
    for name, true in TRUE_BGNBD.items():
        assert fitted[name] == pytest.approx(true, rel=0.25), name
    gg = model.gamma_gamma
    true_mean = TRUE_GG["p"] * TRUE_GG["v"] / (TRUE_GG["q"] - 1)
    assert gg.population_mean == pytest.approx(true_mean, rel=0.2)


def test_frequent_buyers_get_more_expected_purchases_than_rare_ones(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    summary, rate, model = simulated

    predicted = model.predict(summary, horizon_days=182)

    frequent = rate >= np.quantile(rate, 0.75)
    rare = rate <= np.quantile(rate, 0.25)
    assert predicted["expected_purchases"][frequent].mean() > (
        3 * predicted["expected_purchases"][rare].mean()
    )
    assert predicted["probability_alive"].between(0, 1).all()
    assert (predicted["probability_alive"][summary["frequency"] == 0] == 1).all()


def test_more_repeat_purchases_at_equal_recency_raise_expected_purchases(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    _, _, model = simulated
    grid = pd.DataFrame(
        {
            "customer_id": ["x1", "x3", "x9"],
            "frequency": [1, 3, 9],
            "recency": [40.0] * 3,
            "T": [45.0] * 3,
            "monetary_value": [20.0] * 3,
        }
    )

    predicted = model.predict(grid, horizon_days=365)["expected_purchases"].to_numpy()

    assert np.all(np.diff(predicted) > 0)


# --------------------------------------------------------------------------------------------
# Comparison and the pipeline model
# --------------------------------------------------------------------------------------------


def _tiered_orders(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders where only a caller feature (tier) tells who spends ten times more later.

    Before the cutoff (2024-04-01) every customer buys alike (one to six orders of about 10);
    in the 90 days after it gold
    customers buy three times for about 100 each, the others once for about 10.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"k{i:04d}" for i in range(n)])
    gold = rng.random(n) < 0.3
    start = pd.Timestamp("2024-01-01")
    # One to six calibration orders per customer on random days, with alike spend.
    per_customer = rng.integers(1, 7, n)
    calibration = np.repeat(ids, per_customer)
    rows = [
        pd.DataFrame(
            {
                "customer_id": calibration,
                "ordered_at": start + pd.to_timedelta(rng.integers(0, 90, calibration.size), "D"),
                "amount": rng.gamma(4.0, 2.5, calibration.size),
            }
        )
    ]
    for k in range(3):  # the holdout
        buys = gold | (k == 0)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids[buys],
                    "ordered_at": pd.Timestamp("2024-04-05")
                    + pd.to_timedelta(rng.integers(0, 85, int(buys.sum())), "D"),
                    "amount": np.where(gold[buys], 100.0, 10.0) * rng.uniform(0.9, 1.1, buys.sum()),
                }
            )
        )
    features = pd.DataFrame({"customer_id": ids, "tier": np.where(gold, "gold", "standard")})
    return pd.concat(rows, ignore_index=True), features


def test_the_customer_split_is_reported_but_never_picks_catboost(tmp_path: Path) -> None:
    orders, tiers = _tiered_orders(400, seed=11)
    config = replace(FAST, horizon_days=90, catboost_protocol="auto")

    comparison = compare_on_holdout(orders, pd.Timestamp("2024-04-01"), config, tiers)

    # Nobody was a customer 90 days before the cutoff: the customer split is the only option.
    assert comparison.catboost_protocol == "customer_split"
    assert comparison.customers == 400
    # By the split CatBoost looks far better, but the split flatters it: the baseline is kept.
    assert comparison.catboost.value_mae < 0.5 * comparison.bgnbd.value_mae
    assert comparison.winner == "bgnbd"
    assert "customer split" in comparison.decided_by
    assert comparison.protocol.startswith("customer split (flatters CatBoost; reported, never")
    assert "customer_id" not in comparison.as_metrics()
    png = plot_clv_holdout(comparison, tmp_path / "plots" / "clv.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _windowed_orders(
    n: int, seed: int, *, drift: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Orders of customers with their own steady rate and spend, plus bursts a tier announces.

    Every customer first buys in July 2023, then at a rate of their own (about 1.5 purchase
    days per 91 days on average) until 2024-07-01, each order worth about their own mean spend.
    In each 91-day window from 2023-10-01 (the last one is the holdout after the cutoff
    2024-04-01), the customers of that window's tier (30%, drawn independently per window, known
    at its start) buy on eight more days. So the history says nothing about who bursts in the
    holdout, and only the tier does. With ``drift`` the window before the cutoff runs the other
    way round (the 70% outside its tier burst), so a model trained on it out of time learns the
    wrong sign.

    Returns:
        The orders, the tiers at 2024-01-01 (the out-of-time training cutoff) and at the cutoff.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"w{i:04d}" for i in range(n)])
    first = pd.Timestamp("2023-07-01") + pd.to_timedelta(rng.integers(0, 31, n), "D")
    active_days = (pd.Timestamp("2024-07-01") - first).days.to_numpy()
    rate = rng.gamma(1.0, 1.5 / 91, n)  # purchase days per day
    spend = rng.gamma(4.0, 10.0 / 4.0, n)  # mean spend per order
    repeats = rng.poisson(rate * active_days)
    who = np.concatenate([np.arange(n), np.repeat(np.arange(n), repeats)])
    offset = np.concatenate(
        [np.zeros(n, dtype=int), rng.integers(1, np.repeat(active_days, repeats) + 1)]
    )
    tiers = []
    for window, start in enumerate(pd.to_datetime(["2023-10-02", "2024-01-02", "2024-04-02"])):
        gold = rng.random(n) < 0.3
        tiers.append(pd.DataFrame({"customer_id": ids, "tier": np.where(gold, "gold", "std")}))
        burst = np.flatnonzero(~gold if (drift and window == 1) else gold)
        for k in range(8):  # eight distinct days: k * 11 + 0..9 after the window starts
            day = start + pd.to_timedelta(k * 11 + rng.integers(0, 10, burst.size), "D")
            who = np.concatenate([who, burst])
            offset = np.concatenate([offset, (day - first[burst]).days.to_numpy()])
    orders = pd.DataFrame(
        {
            "customer_id": ids[who],
            "ordered_at": first[who] + pd.to_timedelta(offset, "D"),
            "amount": spend[who] * rng.gamma(6.0, 1.0 / 6.0, who.size),
        }
    )
    return orders, tiers[1], tiers[2]


def test_out_of_time_picks_catboost_when_a_feature_reveals_future_value() -> None:
    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)
    config = OUT_OF_TIME

    comparison = compare_on_holdout(
        orders, pd.Timestamp("2024-04-01"), config, tiers_at_cutoff, tiers_before
    )

    assert comparison.catboost_protocol == "out_of_time"
    assert comparison.winner == "catboost"
    assert comparison.catboost.value_mae < 0.8 * comparison.bgnbd.value_mae
    assert comparison.judged_on == "value"
    assert comparison.protocol == (
        "out of time: fit on orders up to 2024-04-01, judged on the 91 days after, 400 "
        "customers; CatBoost trained on features at 2024-01-01 and the 91 days to the cutoff "
        "(400 customers)"
    )
    assert comparison.decided_by.startswith("catboost: lower value_mae out of time")


def test_the_out_of_time_backtest_overrules_a_flattering_customer_split() -> None:
    # The first window runs the other way round: out of time, CatBoost learns the wrong sign of
    # the tier; by the split, trained on the judged window itself, it learns the right one.
    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=True)
    config = replace(OUT_OF_TIME, report_customer_split=True)

    comparison = compare_on_holdout(
        orders, pd.Timestamp("2024-04-01"), config, tiers_at_cutoff, tiers_before
    )

    split = comparison.catboost_customer_split
    assert split is not None
    assert split.value_mae < comparison.bgnbd.value_mae  # the split alone would pick CatBoost
    assert comparison.catboost.value_mae > comparison.bgnbd.value_mae  # out of time it loses
    assert comparison.catboost_protocol == "out_of_time"
    assert comparison.winner == "bgnbd"
    assert comparison.decided_by.startswith("bgnbd: lower value_mae out of time")
    metrics = comparison.as_metrics()
    assert metrics["catboost_customer_split_value_mae"] == split.value_mae


def _scores(value_mae: float, purchases_mae: float = 1.0) -> ClvScores:
    return ClvScores(purchases_mae, 1.0, value_mae, 1.0, 1.0, 1.0, 0.0, 0.0, 0.5)


@pytest.mark.parametrize(
    ("bgnbd_mae", "catboost_mae", "winner"),
    [(10.0, 9.0, "catboost"), (9.0, 10.0, "bgnbd"), (9.0, 9.0, "bgnbd")],
)
def test_pick_winner_uses_value_mae_and_breaks_ties_for_the_baseline(
    bgnbd_mae: float, catboost_mae: float, winner: str
) -> None:
    assert pick_winner(_scores(bgnbd_mae), _scores(catboost_mae)) == winner


def test_pick_winner_on_purchases_ignores_value() -> None:
    bgnbd, catboost = _scores(1.0, purchases_mae=2.0), _scores(9.0, purchases_mae=1.5)

    assert pick_winner(bgnbd, catboost, "purchases") == "catboost"
    assert pick_winner(bgnbd, catboost, "value") == "bgnbd"


@pytest.mark.parametrize("on", ["value", "purchases"])
def test_only_an_out_of_time_backtest_can_pick_catboost(on: str) -> None:
    better, worse = _scores(1.0, purchases_mae=1.0), _scores(9.0, purchases_mae=9.0)
    cutoff = pd.Timestamp("2024-04-01")
    split = Backtest("customer_split", cutoff, 91, 400, 200)
    out_of_time = Backtest("out_of_time", cutoff, 91, 400, 400)

    assert decide_winner(split, worse, better, on)[0] == "bgnbd"  # type: ignore[arg-type]
    assert decide_winner(out_of_time, worse, better, on)[0] == "catboost"  # type: ignore[arg-type]
    assert split.flattering and not out_of_time.flattering


# --------------------------------------------------------------------------------------------
# Orders without amounts, or with one amount on every order
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amounts", "reason"),
    [
        (np.nan, NO_AMOUNTS),
        (1.0, "every order has the same amount (1): Gamma-Gamma would be degenerate"),
    ],
    ids=["absent", "constant"],
)
def test_without_usable_amounts_no_value_is_fitted_or_published(
    amounts: float, reason: str
) -> None:
    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)
    with_amounts = orders.copy()
    orders["amount"] = amounts
    config = OUT_OF_TIME

    comparison = compare_on_holdout(
        orders, pd.Timestamp("2024-04-01"), config, tiers_at_cutoff, tiers_before
    )

    assert comparison.value_reason is not None and comparison.value_reason.startswith(reason)
    assert comparison.judged_on == "purchases"
    assert comparison.baseline.gamma_gamma is None  # Gamma-Gamma was not fitted
    assert np.isnan(comparison.bgnbd.value_mae) and np.isnan(comparison.catboost.value_mae)
    assert "purchases_mae" in comparison.decided_by
    # The tier tells who buys three times: CatBoost wins on purchases out of time.
    assert comparison.winner == "catboost"
    assert not any("value" in k for k in comparison.as_metrics() if k != "actual_value")
    assert "actual_value" not in comparison.as_metrics()

    as_of = pd.Timestamp("2024-07-01")
    for method in ("bgnbd", "catboost"):
        model = fit_clv(orders, as_of, method, config, tiers_at_cutoff)  # type: ignore[arg-type]
        scored = predict_clv(model, orders, features=tiers_at_cutoff)
        assert model.value_reason == comparison.value_reason
        assert scored["expected_value_12m"].isna().all()
        assert (scored["expected_purchases_12m"] > 0).all()
        assert scored["probability_alive"].between(0, 1).all()
    # BG/NBD never reads amounts: its purchases and probability alive are those with amounts.
    reference = predict_clv(fit_clv(with_amounts, as_of, "bgnbd", config), with_amounts)
    without = predict_clv(fit_clv(orders, as_of, "bgnbd", config), orders)
    for column in ("expected_purchases_12m", "probability_alive"):
        np.testing.assert_allclose(without[column], reference[column], rtol=1e-4)
    assert reference["expected_value_12m"].notna().all()


def test_orders_with_varied_amounts_keep_value() -> None:
    orders, _, _ = _windowed_orders(100, seed=1, drift=False)

    assert value_unavailable_reason(orders) is None
    model = fit_clv(orders, pd.Timestamp("2024-07-01"), "bgnbd", replace(FAST, horizon_days=91))
    assert model.value_reason is None and model.baseline.gamma_gamma is not None
    assert (predict_clv(model, orders)["expected_value_12m"] > 0).all()


def test_some_orders_without_an_amount_publish_no_value_and_say_how_many() -> None:
    orders, _, _ = _windowed_orders(100, seed=1, drift=False)
    orders.loc[:9, "amount"] = np.nan

    reason = value_unavailable_reason(orders)

    assert reason is not None
    assert reason.startswith(f"10 of {len(orders):,} orders have no amount")
    with pytest.raises(ValueError, match="all amounts or none"):
        rfm_summary(orders, CUTOFF)


def test_a_model_with_value_refuses_orders_without_amounts() -> None:
    orders, _, _ = _windowed_orders(100, seed=1, drift=False)
    model = fit_clv(orders, pd.Timestamp("2024-07-01"), "bgnbd", replace(FAST, horizon_days=91))

    with pytest.raises(ValueError, match="retrain"):
        predict_clv(model, orders.assign(amount=np.nan))


def test_score_predictions_matches_hand_computed_errors() -> None:
    scores = score_predictions([0, 2, 4], [0.0, 20.0, 40.0], [1, 2, 2], [10.0, 20.0, 10.0])

    assert scores.purchases_mae == pytest.approx(1.0)  # |1| + 0 + |-2|, over 3
    assert scores.purchases_rmse == pytest.approx(np.sqrt(5 / 3))
    assert scores.value_mae == pytest.approx(40 / 3)
    assert scores.purchases_total_error_pct == pytest.approx(-100 / 6)
    assert scores.value_total_error_pct == pytest.approx(-100 / 3)


def test_catboost_clv_model_scores_every_known_customer() -> None:
    orders, tiers = _tiered_orders(300, seed=5)
    # As of 2024-06-30 the regressor learns from the window 2024-04-01..2024-06-30.
    as_of = pd.Timestamp("2024-06-30")

    model = fit_clv(
        orders,
        as_of,
        "catboost",
        ClvConfig(boosting=BoostingParams(iterations=30), horizon_days=90),
        tiers,
    )
    scored = predict_clv(model, orders, features=tiers)

    assert tuple(scored.columns) == PREDICTION_COLUMNS
    assert len(scored) == 300
    assert scored["probability_alive"].between(0, 1).all()
    assert (scored[["expected_purchases_12m", "expected_value_12m"]] >= 0).all().all()


# --------------------------------------------------------------------------------------------
# The hybrid: CatBoost correcting the BG/NBD + Gamma-Gamma forecast
# --------------------------------------------------------------------------------------------

HYBRID = replace(OUT_OF_TIME, hybrid=True)
JUDGED_CUTOFF = pd.Timestamp("2024-04-01")


def test_the_hybrid_fits_and_scores_every_known_customer() -> None:
    orders, _, tiers_at_cutoff = _windowed_orders(300, seed=1, drift=False)
    as_of = pd.Timestamp(
        "2024-07-01"
    )  # trained on the features at 2024-04-01 and the 91 days after

    model = fit_clv(orders, as_of, "hybrid", replace(FAST, horizon_days=91), tiers_at_cutoff)
    scored = predict_clv(model, orders, features=tiers_at_cutoff)

    assert model.method == "hybrid" and model.regressor is not None and model.regressor.offset
    assert tuple(scored.columns) == PREDICTION_COLUMNS
    assert len(scored) == 300
    values = scored[["expected_purchases_12m", "expected_value_12m"]].to_numpy()
    assert np.isfinite(values).all() and (values > 0).all()
    assert scored["probability_alive"].between(0, 1).all()
    # The stored model pickles and scores the same after loading.
    loaded = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(predict_clv(loaded, orders, features=tiers_at_cutoff), scored)


def test_the_hybrid_starts_from_the_baseline_forecast() -> None:
    # One vanishing step: the correction is nil, so the hybrid must give BG/NBD + GG's forecast
    # (without the offset it would give exp(0) = 1 purchase to everyone).
    orders, _, _ = _windowed_orders(200, seed=2, drift=False)
    as_of = pd.Timestamp("2024-07-01")
    config = replace(FAST, horizon_days=91, hybrid_iterations=1, hybrid_learning_rate=1e-6)

    hybrid = predict_clv(fit_clv(orders, as_of, "hybrid", config), orders)
    baseline = predict_clv(fit_clv(orders, as_of, "bgnbd", config), orders)

    for column in ("expected_purchases_12m", "expected_value_12m"):
        np.testing.assert_allclose(hybrid[column], baseline[column], rtol=1e-4)


def test_the_hybrid_reads_rates_not_what_grows_with_a_customers_age() -> None:
    # Trained one horizon younger than it scores: a split on T or a count learned on the young
    # would send every older customer to its last leaf (one cohort, as on CDNOW).
    orders, _, _ = _windowed_orders(200, seed=2, drift=False)
    model = fit_clv(orders, pd.Timestamp("2024-07-01"), "hybrid", replace(FAST, horizon_days=91))

    assert model.regressor is not None
    names = set(model.regressor.feature_names)
    assert names.isdisjoint(HYBRID_EXCLUDED)
    assert set(HYBRID_RATE_FEATURES) <= names
    design = hybrid_design(orders, CUTOFF, 91).set_index("customer_id")
    np.testing.assert_allclose(design["purchase_rate"], design["frequency"] / design["T"])


def test_the_hybrid_keeps_the_baselines_level_after_a_busier_training_window() -> None:
    # Every purchase day of the training targets' window is bought again the next day: that
    # window is about twice as busy as BG/NBD at its start foresaw. The hybrid must learn whom
    # BG/NBD misjudges, not that one window's level: its total stays near the baseline's at the
    # as-of date (with the level learned it is about twice the baseline's).
    orders, _, _ = _windowed_orders(300, seed=5, drift=False)
    as_of = pd.Timestamp("2024-07-01")
    config = replace(FAST, horizon_days=91)
    window = orders["ordered_at"].between(as_of - pd.Timedelta(days=90), as_of)
    busier = pd.concat(
        [
            orders,
            orders.loc[window].assign(ordered_at=lambda f: f["ordered_at"] + pd.Timedelta(days=1)),
        ]
    )
    busier = busier.loc[busier["ordered_at"] <= as_of + pd.Timedelta(hours=23)]

    hybrid = predict_clv(fit_clv(busier, as_of, "hybrid", config), busier)
    baseline = predict_clv(fit_clv(busier, as_of, "bgnbd", config), busier)

    ratio = hybrid["expected_purchases_12m"].sum() / baseline["expected_purchases_12m"].sum()
    assert ratio == pytest.approx(1.0, abs=0.15)


def test_the_hybrids_baseline_features_never_read_orders_after_their_cutoff() -> None:
    orders, _, _ = _windowed_orders(200, seed=4, drift=False)
    cutoff = pd.Timestamp("2024-01-01")
    # A future that would move every figure: each customer buys ten times more after the cutoff,
    # at ten times the amount.
    later = orders.loc[orders["ordered_at"] > cutoff + pd.Timedelta(days=1)]
    louder = pd.concat(
        [orders, *[later.assign(amount=later["amount"] * 10) for _ in range(10)]],
        ignore_index=True,
    )

    fitted, features = baseline_features(orders, cutoff, 91)
    fitted_louder, features_louder = baseline_features(louder, cutoff, 91)

    assert fitted == fitted_louder
    pd.testing.assert_frame_equal(features, features_louder)
    pd.testing.assert_frame_equal(
        hybrid_design(orders, cutoff, 91), hybrid_design(louder, cutoff, 91)
    )


def test_the_judged_hybrid_never_sees_the_holdout() -> None:
    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)
    # The same world with a different holdout: every order after the cutoff twice, at 3x.
    after = orders.loc[orders["ordered_at"] > JUDGED_CUTOFF + pd.Timedelta(days=1)]
    other = pd.concat([orders, after.assign(amount=after["amount"] * 3)], ignore_index=True)

    judged = compare_on_holdout(orders, JUDGED_CUTOFF, HYBRID, tiers_at_cutoff, tiers_before)
    again = compare_on_holdout(other, JUDGED_CUTOFF, HYBRID, tiers_at_cutoff, tiers_before)

    assert judged.actual_value != again.actual_value  # the holdouts differ...
    for column in ("hybrid_purchases", "hybrid_value"):  # ...the hybrid's forecasts do not
        np.testing.assert_allclose(judged.predictions[column], again.predictions[column])


def test_the_hybrids_training_rows_use_a_baseline_fitted_at_the_training_cutoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A baseline fitted at the judged cutoff would carry the training targets' window into the
    # training rows' features: every fit must see only the orders up to its rows' as-of date.
    from ml.models.customer_value import model as clv

    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)
    ages: list[float] = []  # the oldest customer's T in each fitted summary (weeks)

    def spy(summary: pd.DataFrame, period_days: float = 7.0) -> BaselineModel:
        ages.append(float(summary["T"].max()))
        return fit_baseline(summary, period_days)

    monkeypatch.setattr(clv, "fit_baseline", spy)
    compare_on_holdout(orders, JUDGED_CUTOFF, HYBRID, tiers_at_cutoff, tiers_before)

    first = orders["ordered_at"].min().floor("D")
    train_cutoff = JUDGED_CUTOFF - pd.Timedelta(days=HYBRID.horizon_days)
    weeks = [(day - first).days / 7.0 for day in (train_cutoff, JUDGED_CUTOFF)]
    assert sorted(ages) == pytest.approx(weeks)


def test_out_of_time_picks_the_hybrid_when_it_corrects_the_baseline_best() -> None:
    # The tier announces the holdout's bursts: a correction of BG/NBD + GG by the tier beats both
    # the baseline and CatBoost from scratch here.
    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)

    comparison = compare_on_holdout(orders, JUDGED_CUTOFF, HYBRID, tiers_at_cutoff, tiers_before)

    hybrid = comparison.hybrid
    assert hybrid is not None
    assert comparison.winner == "hybrid"
    assert hybrid.value_mae < min(comparison.bgnbd.value_mae, comparison.catboost.value_mae)
    assert comparison.decided_by.startswith("hybrid: lower value_mae out of time")
    assert comparison.as_metrics()["hybrid_value_mae"] == hybrid.value_mae


@pytest.mark.parametrize(
    ("maes", "out_of_time_winner"),
    [
        ((3.0, 2.0, 1.0), "hybrid"),
        ((3.0, 1.0, 2.0), "catboost"),
        ((1.0, 2.0, 1.0), "bgnbd"),  # a tie keeps the simpler method
        ((3.0, 1.0, 1.0), "catboost"),
    ],
)
def test_decide_winner_picks_among_three_and_never_by_the_split(
    maes: tuple[float, float, float], out_of_time_winner: str
) -> None:
    bgnbd, catboost, hybrid = (_scores(9.0, purchases_mae=m) for m in maes)
    cutoff = pd.Timestamp("2024-04-01")
    split = Backtest("customer_split", cutoff, 91, 400, 200)
    out_of_time = Backtest("out_of_time", cutoff, 91, 400, 400)

    winner, why = decide_winner(out_of_time, bgnbd, catboost, "purchases", hybrid)
    assert winner == out_of_time_winner
    assert "hybrid" in why
    assert decide_winner(split, bgnbd, catboost, "purchases", hybrid)[0] == "bgnbd"


def test_the_pipeline_serves_the_hybrid_when_the_backtest_picks_it(tmp_path: Path) -> None:
    from ml.models.customer_value.data import ValueTrainingInputs
    from ml.models.customer_value.pipeline import train

    orders, tiers_before, tiers_at_cutoff = _windowed_orders(400, seed=3, drift=False)
    # The comparison cutoff is the day before inputs.cutoff, as for the served model.
    inputs = ValueTrainingInputs(
        transactions=orders.loc[orders["ordered_at"] < pd.Timestamp("2024-07-02")],
        as_of=pd.Timestamp("2024-07-02"),
        cutoff=JUDGED_CUTOFF + pd.Timedelta(days=1),
        features_at_cutoff=tiers_at_cutoff,
        features_before_cutoff=tiers_before,
        features_a_year_before=tiers_at_cutoff,
    )

    training = train(inputs, HYBRID, tmp_path)

    assert training.summary["method"] == "hybrid"
    assert training.candidate.model.method == "hybrid"
    assert training.summary["hybrid_value_mae"] < training.summary["bgnbd_value_mae"]
