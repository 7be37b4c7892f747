"""The churn training sample: whole customers by a hash of their id, under a row cap."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.data.features import KEY_COLUMNS, LABEL_COLUMN
from ml.models.churn import pipeline as churn
from ml.models.churn.data import (
    SAMPLE_RULE,
    read_labelled_features,
    read_training_inputs,
    training_sample,
)
from ml.models.churn.model import TrainingConfig
from tests.ml.conftest import MONTHS, make_feature_frame

LABELLED_MONTHS = MONTHS[:10]  # the two newest months have no label yet


def _frame() -> pd.DataFrame:
    """300 customers at 12 monthly as-of dates, a fifth of the customer-months missing, so
    customers have different numbers of rows (as customers who joined or left do)."""
    frame = make_feature_frame(300, MONTHS, seed=5)
    keep = np.random.default_rng(11).random(len(frame)) >= 0.2
    return frame.loc[keep].reset_index(drop=True)


def _warehouse(frame: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema marts")
    labels = frame[[*KEY_COLUMNS, LABEL_COLUMN]].assign(
        label_available=pd.to_datetime(frame["as_of_date"]) < pd.Timestamp(MONTHS[-2]),
        horizon_days=28,
    )
    con.register("features_df", frame.drop(columns=LABEL_COLUMN))
    con.register("labels_df", labels)
    con.execute("create table marts.customer_features as select * from features_df")
    con.execute("alter table marts.customer_features alter as_of_date type date")
    con.execute(
        "create table marts.churn_labels as select customer_id, as_of_date::date as as_of_date, "
        "churned, label_available, horizon_days from labels_df"
    )
    con.execute(
        "create table marts.customer_identity_map as select distinct customer_id, "
        "customer_id as customer_record_id from features_df"
    )
    con.execute(
        "create table marts.customers as select distinct customer_id, 1980 as birth_year, "
        "'f' as gender from features_df"
    )
    return con


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def warehouse(frame: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    return _warehouse(frame)


def _rows_per_customer(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("customer_id").size()


@pytest.mark.parametrize("above", [None, 0, 1, 10_000_000])
def test_no_sample_at_or_below_the_cap(
    warehouse: duckdb.DuckDBPyConnection, above: int | None
) -> None:
    everything = read_labelled_features(warehouse, LABELLED_MONTHS)
    max_rows = None if above is None else len(everything) + above
    sample = training_sample(warehouse, LABELLED_MONTHS, max_rows)
    assert not sample.sampled and sample.fraction == 1.0
    assert sample.rows_kept == sample.rows_available == len(everything)
    assert sample.customers_kept == sample.customers_available == 300
    assert sample.as_params()["training_sample"] == "every labelled row"
    pd.testing.assert_frame_equal(
        read_labelled_features(warehouse, LABELLED_MONTHS, sample), everything
    )


@pytest.mark.parametrize("max_rows", [12, 100, 777, 1500])
def test_above_the_cap_whole_customers_in_hash_order_fill_it(
    warehouse: duckdb.DuckDBPyConnection, max_rows: int
) -> None:
    everything = read_labelled_features(warehouse, LABELLED_MONTHS)
    sample = training_sample(warehouse, LABELLED_MONTHS, max_rows)
    read = read_labelled_features(warehouse, LABELLED_MONTHS, sample)

    assert sample.sampled and len(read) == sample.rows_kept <= max_rows
    assert sample.rows_available == len(everything)
    assert sample.fraction == pytest.approx(len(read) / len(everything))
    # Whole customers: each one read has every row it has at these dates, and nothing changed.
    kept = _rows_per_customer(read)
    assert len(kept) == sample.customers_kept
    pd.testing.assert_series_equal(kept, _rows_per_customer(everything).loc[kept.index])
    expected = everything.loc[everything["customer_id"].isin(kept.index)].reset_index(drop=True)
    # DuckDB gives a nullable integer dtype only to a column that holds a null in the result.
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)
    # The rule: customers in order of md5(customer_id), as many as fit; the next one would not.
    by_hash = sorted(
        _rows_per_customer(everything).items(),
        key=lambda item: (hashlib.md5(item[0].encode()).hexdigest(), item[0]),
    )
    prefix = [customer for customer, _ in by_hash[: len(kept)]]
    assert sorted(prefix) == sorted(kept.index)
    if len(kept) < len(by_hash):
        assert len(read) + by_hash[len(kept)][1] > max_rows
    params = sample.as_params()
    assert params["training_sample"] == SAMPLE_RULE
    assert params["training_max_rows"] == max_rows
    assert params["training_rows_kept"] == len(read)


def test_the_sample_depends_on_the_data_only_not_on_row_order(frame: pd.DataFrame) -> None:
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    samples = []
    for con in (_warehouse(frame), _warehouse(shuffled), _warehouse(frame)):
        sample = training_sample(con, LABELLED_MONTHS, 1000)
        samples.append((sample, read_labelled_features(con, LABELLED_MONTHS, sample)))
    (first, read), *others = samples
    for sample, other in others:
        assert sample == first
        pd.testing.assert_frame_equal(other, read)
    # A larger cap keeps every customer of the smaller one: the cut only moves.
    wider = read_labelled_features(
        _warehouse(frame),
        LABELLED_MONTHS,
        training_sample(_warehouse(frame), LABELLED_MONTHS, 1600),
    )
    assert set(read["customer_id"]) < set(wider["customer_id"])


@pytest.mark.parametrize(("max_rows", "error"), [(0, "at least 1"), (1, "keeps no customer")])
def test_a_cap_that_keeps_nothing_is_refused(
    warehouse: duckdb.DuckDBPyConnection, max_rows: int, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        training_sample(warehouse, LABELLED_MONTHS, max_rows)


def test_training_reads_the_sample_of_its_split_and_records_it(
    warehouse: duckdb.DuckDBPyConnection, fast_config: TrainingConfig, tmp_path: Path
) -> None:
    inputs = read_training_inputs(warehouse, fast_config.training_as_of_dates, max_rows=900)
    split_dates = {date(2025, m, 1) for m in (6, 7, 8, 9, 10)}  # 4 training dates + validation
    assert set(pd.to_datetime(inputs.labelled["as_of_date"]).dt.date) == split_dates
    assert inputs.sample.sampled and len(inputs.labelled) == inputs.sample.rows_kept <= 900
    assert inputs.sample.rows_available == len(read_labelled_features(warehouse, split_dates))
    training = churn.train(
        inputs,
        fast_config,
        churn.ChurnGovernance(action_threshold=0.3, capacity=50),
        plots_dir=tmp_path / "plots",
    )
    recorded = inputs.sample.as_params()
    assert recorded["training_rows_kept"] == inputs.sample.rows_kept
    assert 0 < float(recorded["training_sample_fraction"]) < 1
    # The same record in the MLflow parameters and in the summary the asset shows.
    assert recorded.items() <= training.candidate.params.items()
    assert recorded.items() <= training.summary.items()
    kept = set(inputs.labelled["customer_id"])
    assert set(training.split.validation["customer_id"]) <= kept
