"""Out-of-time split, CatBoost training, calibration choice and the mart readers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.data.features import (
    CHURN_FEATURES,
    KEY_COLUMNS,
    LABEL_COLUMN,
    read_reference_features,
    read_scoring_features,
)
from ml.modelling.boosting import (
    CalibratedBooster,
    Calibrator,
    choose_calibrator,
    fit_with_calibration,
)
from ml.models.churn.data import read_labelled_as_of_dates, read_labelled_features
from ml.models.churn.model import (
    ChurnModel,
    TrainingConfig,
    out_of_time_dates,
    split_out_of_time,
    train_churn_model,
)
from tests.ml.conftest import HORIZON_DAYS

FrameFactory = Callable[..., pd.DataFrame]

# --- split ---------------------------------------------------------------------------------


def test_split_validates_on_newest_date_and_trains_only_on_closed_windows(
    feature_frame: pd.DataFrame,
) -> None:
    split = split_out_of_time(feature_frame, training_as_of_dates=4, horizon_days=HORIZON_DAYS)

    assert split.validation_date == date(2025, 12, 1)
    used = (*split.train_dates, split.calibration_date)
    assert all(d + timedelta(days=90) <= split.validation_date for d in used if d)
    # The newest four eligible months; the newest of them is the calibration slice.
    assert split.train_dates == (date(2025, 6, 1), date(2025, 7, 1), date(2025, 8, 1))
    assert split.calibration_date == date(2025, 9, 1)
    assert set(pd.to_datetime(split.validation["as_of_date"]).dt.date) == {date(2025, 12, 1)}
    assert set(pd.to_datetime(split.calibration["as_of_date"]).dt.date) == {date(2025, 9, 1)}
    assert set(pd.to_datetime(split.train["as_of_date"]).dt.date) == set(split.train_dates)
    assert len(split.train) == 3 * 800 and len(split.validation) == 800


@pytest.mark.parametrize(
    ("horizon_days", "newest_training"),
    [(90, date(2025, 9, 1)), (91, date(2025, 9, 1)), (92, date(2025, 8, 1))],
)
def test_split_respects_horizon_boundary(
    feature_frame: pd.DataFrame, horizon_days: int, newest_training: date
) -> None:
    # 2025-09-01 + 91 days = 2025-12-01 (allowed: window closes on the validation date); +92 is not.
    split = split_out_of_time(feature_frame, 3, horizon_days=horizon_days)
    assert split.calibration_date == newest_training
    assert max(split.train_dates) < newest_training


def test_split_with_one_eligible_date_has_no_calibration_slice(make_frame: FrameFactory) -> None:
    frame = make_frame(50, (date(2025, 1, 1), date(2025, 4, 1)))
    split = split_out_of_time(frame, training_as_of_dates=6, horizon_days=HORIZON_DAYS)
    assert split.train_dates == (date(2025, 1, 1),)
    assert split.calibration_date is None and split.calibration.empty


@pytest.mark.parametrize(
    "dates", [(date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)), (date(2025, 1, 1),)]
)
def test_split_rejects_too_few_dates(make_frame: FrameFactory, dates: tuple[date, ...]) -> None:
    with pytest.raises(ValueError, match="not enough labelled as-of dates"):
        split_out_of_time(make_frame(20, dates), training_as_of_dates=6, horizon_days=HORIZON_DAYS)


def test_split_rejects_empty_frame(feature_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="empty"):
        split_out_of_time(feature_frame.iloc[:0], training_as_of_dates=6, horizon_days=HORIZON_DAYS)


def test_split_summary_holds_aggregates_only(feature_frame: pd.DataFrame) -> None:
    summary = split_out_of_time(feature_frame, 4, horizon_days=HORIZON_DAYS).summary()
    assert summary["validation_rows"] == 800
    assert not any("C0" in str(v) for v in summary.values())


# --- training ------------------------------------------------------------------------------


def test_trained_model_learns_planted_signal(
    trained_model: ChurnModel,
    feature_frame: pd.DataFrame,
    true_logit: Callable[[pd.DataFrame], np.ndarray],
) -> None:
    validation = split_out_of_time(feature_frame, 4, horizon_days=HORIZON_DAYS).validation
    proba = trained_model.predict_proba(validation)
    y = validation[LABEL_COLUMN].astype(int)
    oracle = roc_auc_score(y, true_logit(validation))

    assert proba.shape == (len(validation),)
    assert np.all((proba >= 0) & (proba <= 1))
    assert roc_auc_score(y, proba) > 0.75
    assert roc_auc_score(y, proba) > oracle - 0.06
    # More tickets never lowers the risk of the same customer in this world.
    more_tickets = validation.assign(tickets_30d=validation["tickets_30d"] + 3)
    assert trained_model.predict_proba(more_tickets).mean() > proba.mean()


def test_model_uses_allow_list_and_records_window(trained_model: ChurnModel) -> None:
    assert trained_model.feature_names == CHURN_FEATURES
    assert trained_model.booster.feature_names_ == list(CHURN_FEATURES)
    assert trained_model.training_window is not None
    assert trained_model.training_window.validation_date == date(2025, 12, 1)
    assert trained_model.training_as_of_dates[-1] == date(2025, 9, 1)


def test_prepare_fills_missing_categories_and_nullable_ints(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    rows = feature_frame.head(200).copy()
    rows.loc[rows.index[:3], "plan"] = None
    prepared = trained_model.prepare(rows)
    assert list(prepared.columns) == list(CHURN_FEATURES)
    assert (prepared["plan"].iloc[:3] == "missing").all()
    assert prepared["days_since_last_login"].dtype == np.float64
    assert (
        prepared["days_since_last_login"].isna().sum() == rows["days_since_last_login"].isna().sum()
    )
    assert np.isfinite(trained_model.predict_proba(rows)).all()


def test_prepare_names_missing_features(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="tickets_30d"):
        trained_model.prepare(feature_frame.drop(columns="tickets_30d"))


def test_shap_values_add_up_to_raw_log_odds(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    rows = feature_frame.head(100)
    shap = trained_model.shap_values(rows)
    assert shap.shape == (100, len(CHURN_FEATURES))
    bias = trained_model.raw_logit(rows) - shap.sum(axis=1)
    np.testing.assert_allclose(bias, bias[0], atol=1e-6)


# --- calibration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distort", "expected"),
    [
        (lambda z: z, None),  # already calibrated: Platt cannot beat it out of fold
        (lambda z: 2.5 * z + 1.0, "sigmoid"),  # overconfident and shifted
        (lambda z: 0.4 * z - 0.8, "sigmoid"),  # underconfident and shifted
    ],
    ids=["calibrated", "overconfident", "underconfident"],
)
def test_auto_calibration_keeps_sigmoid_only_when_brier_improves(distort, expected) -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(-1.5, 1.2, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    calibrator, report = choose_calibrator(distort(z), y, "auto", seed=1)

    assert (calibrator.method if calibrator else None) == expected
    assert report.brier_uncalibrated is not None
    assert report.brier_calibrated_out_of_fold is not None
    improved = report.brier_calibrated_out_of_fold < report.brier_uncalibrated
    assert improved == (expected == "sigmoid")


def test_auto_calibration_fixes_shifted_base_rate(
    make_frame: FrameFactory, months: tuple[date, ...], fast_config: TrainingConfig
) -> None:
    # The newest months churn far more than the training months: the raw booster underestimates.
    old = make_frame(800, months[:8], seed=1)
    new = make_frame(800, months[8:], seed=2, churn_shift=1.5)
    split = split_out_of_time(
        pd.concat([old, new], ignore_index=True), 4, horizon_days=HORIZON_DAYS
    )
    model = train_churn_model(split, fast_config)

    assert model.calibrator is not None and model.calibrator.method == "sigmoid"
    observed = split.validation[LABEL_COLUMN].mean()
    raw = 1 / (1 + np.exp(-model.raw_logit(split.validation)))
    calibrated = model.predict_proba(split.validation)
    assert abs(calibrated.mean() - observed) < abs(raw.mean() - observed)


class _PlantedLogit(CalibratedBooster):
    """A booster whose log-odds are the rows' planted ``z``: the calibration choice alone is
    under test, on log-odds whose calibration is known."""

    def __init__(self) -> None:
        self.calibrator = None

    def raw_logit(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["z"].to_numpy(dtype=float)


@pytest.mark.parametrize("refit", [False, True], ids=["same booster", "refitted"])
@pytest.mark.parametrize(
    ("distort", "kept"),
    [(lambda z: z, False), (lambda z: 2.5 * z + 1.0, True)],
    ids=["calibrated", "overconfident"],
)
def test_the_calibration_slices_map_is_kept_for_performance_estimation(
    distort: Callable[[np.ndarray], np.ndarray], kept: bool, refit: bool
) -> None:
    # Auto keeps no map for calibrated log-odds: the served probabilities are the booster's, and
    # estimation reads them through the slice's own Platt map (only its slope, at the served
    # level, once the booster was refitted with the slice). A kept map serves, so estimation
    # trusts the served probabilities as they are.
    # The slice of test_auto_calibration_keeps_sigmoid_only_when_brier_improves, after 100
    # training rows the planted booster does not read.
    rng = np.random.default_rng(7)
    z = rng.normal(-1.5, 1.2, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    rows = pd.DataFrame({"z": np.r_[np.zeros(100), distort(z)], "y": np.r_[np.zeros(100), y]})
    is_calibration = np.arange(len(rows)) >= 100

    model = fit_with_calibration(
        lambda _: _PlantedLogit(),
        rows,
        is_calibration,
        lambda f: f["y"].to_numpy(),
        "auto",
        1,
        refit_without_calibrator=refit,
    ).model
    logit = rows["z"].to_numpy()
    served = model.calibrator.apply(logit) if model.calibrator else 1 / (1 + np.exp(-logit))
    reference = model.reference_probability(served)

    assert (model.calibrator is not None) == kept
    if kept:
        assert model.reference_calibrator is None
        np.testing.assert_array_equal(reference, served)
        return
    slice_rows = rows.loc[is_calibration]
    platt = Calibrator.fit("sigmoid", slice_rows["z"].to_numpy(), slice_rows["y"].to_numpy())
    assert model.reference_calibrator == platt and platt.coef > 0
    if not refit:
        np.testing.assert_allclose(reference, platt.apply(logit), atol=1e-9)
    else:
        assert reference.mean() == pytest.approx(served.mean(), rel=1e-9)
        shift = np.log(reference / (1 - reference)) - platt.coef * logit
        np.testing.assert_allclose(shift, shift[0], atol=1e-6)
        assert not np.allclose(reference, served)


@pytest.mark.parametrize("mode", ["none", "isotonic", "sigmoid"])
def test_forced_calibration_modes(
    feature_frame: pd.DataFrame, fast_config: TrainingConfig, mode: str
) -> None:
    split = split_out_of_time(feature_frame, 3, horizon_days=HORIZON_DAYS)
    model = train_churn_model(
        split,
        replace(
            fast_config, boosting=replace(fast_config.boosting, iterations=20), calibration=mode
        ),
    )  # type: ignore[arg-type]
    assert (model.calibrator.method if model.calibrator else "none") == mode
    proba = model.predict_proba(split.validation)
    assert np.all((proba >= 0) & (proba <= 1))


def test_forced_calibration_without_slice_is_rejected(
    make_frame: FrameFactory, fast_config: TrainingConfig
) -> None:
    split = split_out_of_time(
        make_frame(100, (date(2025, 1, 1), date(2025, 4, 1))), 6, horizon_days=HORIZON_DAYS
    )
    with pytest.raises(ValueError, match="calibration slice"):
        train_churn_model(split, replace(fast_config, calibration="sigmoid"))


def test_single_class_training_rows_are_rejected(
    feature_frame: pd.DataFrame, fast_config: TrainingConfig
) -> None:
    split = split_out_of_time(
        feature_frame.assign(**{LABEL_COLUMN: False}), 3, horizon_days=HORIZON_DAYS
    )
    with pytest.raises(ValueError, match="single class"):
        train_churn_model(split, replace(fast_config, calibration="none"))


# --- datasets ------------------------------------------------------------------------------


@pytest.fixture
def warehouse(make_frame: FrameFactory, months: tuple[date, ...]) -> duckdb.DuckDBPyConnection:
    frame = make_frame(30, months[-5:], seed=3)
    con = duckdb.connect()
    con.execute("create schema marts")
    features = frame.drop(columns=LABEL_COLUMN).assign(email="someone@example.com", gender="f")
    labels = frame[[*KEY_COLUMNS, LABEL_COLUMN]].assign(
        churned_at=None,
        # The two newest months are not labelled yet.
        label_available=pd.to_datetime(frame["as_of_date"]) < pd.Timestamp(months[-2]),
    )
    con.register("features_df", features)
    con.register("labels_df", labels)
    con.execute("create table marts.customer_features as select * from features_df")
    con.execute(
        "create table marts.churn_labels as select customer_id, as_of_date::date as as_of_date, "
        "churned, churned_at::timestamp as churned_at, label_available from labels_df"
    )
    con.execute("alter table marts.customer_features alter as_of_date type date")
    return con


def test_read_labelled_features_selects_allow_list_and_available_labels(
    warehouse: duckdb.DuckDBPyConnection, months: tuple[date, ...]
) -> None:
    frame = read_labelled_features(warehouse)
    assert list(frame.columns) == [*KEY_COLUMNS, *CHURN_FEATURES, LABEL_COLUMN]
    assert set(pd.to_datetime(frame["as_of_date"]).dt.date) == set(months[-5:-2])
    assert len(frame) == 3 * 30
    assert frame[LABEL_COLUMN].dtype == bool


def test_reading_only_the_split_dates_gives_the_split_of_every_labelled_row(
    warehouse: duckdb.DuckDBPyConnection, months: tuple[date, ...]
) -> None:
    # The training asset reads only the dates out_of_time_dates picks; the split must not change.
    assert read_labelled_as_of_dates(warehouse) == list(months[-5:-2])
    train_dates, calibration_date, validation_date = out_of_time_dates(
        read_labelled_as_of_dates(warehouse), training_as_of_dates=1, horizon_days=28
    )
    assert (train_dates, calibration_date, validation_date) == ((months[-4],), None, months[-3])
    few = read_labelled_features(warehouse, [*train_dates, validation_date])
    assert set(pd.to_datetime(few["as_of_date"]).dt.date) == {months[-4], months[-3]}
    from_few = split_out_of_time(few, training_as_of_dates=1, horizon_days=28)
    from_all = split_out_of_time(read_labelled_features(warehouse), 1, horizon_days=28)
    pd.testing.assert_frame_equal(from_few.train, from_all.train)
    pd.testing.assert_frame_equal(from_few.validation, from_all.validation)


def test_read_scoring_features_defaults_to_newest_date(
    warehouse: duckdb.DuckDBPyConnection, months: tuple[date, ...]
) -> None:
    newest = read_scoring_features(warehouse)
    assert list(newest.columns) == [*KEY_COLUMNS, *CHURN_FEATURES]
    assert set(pd.to_datetime(newest["as_of_date"]).dt.date) == {months[-1]}
    older = read_scoring_features(warehouse, months[-3])
    assert set(pd.to_datetime(older["as_of_date"]).dt.date) == {months[-3]}
    assert read_scoring_features(warehouse, date(2000, 1, 1)).empty


def test_read_reference_features_reads_given_dates(
    warehouse: duckdb.DuckDBPyConnection, months: tuple[date, ...]
) -> None:
    frame = read_reference_features(warehouse, [months[-5], months[-4]])
    assert list(frame.columns) == [*KEY_COLUMNS, *CHURN_FEATURES]
    assert set(pd.to_datetime(frame["as_of_date"]).dt.date) == {months[-5], months[-4]}
