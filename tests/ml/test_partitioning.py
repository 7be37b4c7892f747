"""Customer buckets: stable, complete, and refused when the files do not form one scoring."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.data.features import CustomerBucket
from ml.models.churn.data import read_typical_values
from ml.models.churn.explain import typical_values
from ml.serving.partitioning import collect_bucket_scores, write_bucket_scores
from tests.ml.conftest import make_feature_frame

AS_OF = date(2026, 9, 1)


def _scores(ids: list[str], version: str = "2", as_of: date = AS_OF) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of_date": [as_of] * len(ids),
            "churn_probability": [0.1] * len(ids),
            "model_version": [version] * len(ids),
        }
    )


def _split(ids: list[str], buckets: int) -> list[list[str]]:
    with duckdb.connect() as con:
        con.register("ids", pd.DataFrame({"customer_id": ids}))
        return [
            [
                r[0]
                for r in con.execute(
                    f"select customer_id from ids where {CustomerBucket(b, buckets).predicate('customer_id')} "
                    "order by 1"
                ).fetchall()
            ]
            for b in range(buckets)
        ]


def test_every_customer_is_in_exactly_one_bucket_and_the_same_one_each_time() -> None:
    ids = [f"C-R{i:07d}" for i in range(2000)]
    parts = _split(ids, 4)
    assert sorted(itertools.chain.from_iterable(parts)) == ids
    assert min(len(p) for p in parts) > 400
    assert _split(ids, 4) == parts
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        CustomerBucket(4, 4)


def test_collect_checks_completeness_date_and_version(tmp_path: Path) -> None:
    ids = [f"C-{i}" for i in range(100)]
    parts = _split(ids, 3)
    for bucket, part in enumerate(parts[:2]):
        write_bucket_scores(_scores(part), tmp_path, bucket)
    with pytest.raises(ValueError, match=r"missing for buckets \[2\]"):
        collect_bucket_scores(tmp_path, AS_OF, "2", 100, buckets=3)

    write_bucket_scores(_scores(parts[2], version="1"), tmp_path, 2)  # an older champion's file
    with pytest.raises(ValueError, match=r"bucket-02.parquet.*scored by version 2"):
        collect_bucket_scores(tmp_path, AS_OF, "2", 100, buckets=3)

    write_bucket_scores(_scores(parts[2]), tmp_path, 2)
    with pytest.raises(ValueError, match="has 101 customers"):
        collect_bucket_scores(tmp_path, AS_OF, "2", 101, buckets=3)
    scores = collect_bucket_scores(tmp_path, AS_OF, "2", 100, buckets=3)
    assert scores["customer_id"].tolist() == sorted(ids)
    assert not list(tmp_path.glob(".*.tmp"))


def test_typical_values_of_a_snapshot_in_duckdb_equal_the_pandas_medians() -> None:
    frame = make_feature_frame(customers_per_date=301)  # odd and even counts per feature
    newest = frame[frame["as_of_date"] == frame["as_of_date"].max()]
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.register("frame", frame)
        con.execute("create table marts.customer_features as select * from frame")
        assert read_typical_values(con) == pytest.approx(typical_values(newest), abs=1e-12)
