"""Scoring in customer buckets, so a large scoring run fans out across workers.

A customer's bucket is a stable hash of its id (``ml.data.features.CustomerBucket``), so the same customer lands
in the same bucket on every run and on every machine. Each bucket is scored on its own (reading
the warehouse read-only, so many workers can read at once) into one Parquet file; the one writer
then checks that the files form one complete, consistent scoring and publishes them together.
"""

from __future__ import annotations

import os
import uuid
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from ml.data.features import SCORING_BUCKETS


def bucket_keys(buckets: int = SCORING_BUCKETS) -> list[str]:
    """Partition keys of the buckets: ``"00"``, ``"01"``, ..."""
    return [f"{i:02d}" for i in range(buckets)]


def bucket_file(folder: Path, bucket: int) -> Path:
    """The Parquet file of one bucket's scores."""
    return Path(folder) / f"bucket-{bucket:02d}.parquet"


def write_bucket_scores(scores: pd.DataFrame, folder: Path, bucket: int) -> Path:
    """Write a bucket's scores under a temporary name and move it into place (atomic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = bucket_file(folder, bucket)
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        scores.to_parquet(tmp, index=False)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def collect_bucket_scores(
    folder: Path,
    as_of_date: date,
    model_version: str,
    expected_rows: int,
    buckets: int = SCORING_BUCKETS,
) -> pd.DataFrame:
    """Read every bucket's scores and check they are one complete scoring.

    Args:
        folder: Folder of the bucket files.
        as_of_date: The as-of date being scored (the newest feature snapshot).
        model_version: The champion version that must have scored every bucket.
        expected_rows: Customers of that snapshot.
        buckets: Number of buckets.

    Returns:
        All scores, ordered by customer_id (as unpartitioned scoring orders them).

    Raises:
        ValueError: A bucket is missing, or the files mix as-of dates or model versions, or the
            customers do not add up; the message says which, so nothing half is published.
    """
    missing = [b for b in range(buckets) if not bucket_file(folder, b).is_file()]
    if missing:
        raise ValueError(
            f"bucket scores missing for buckets {missing} in {folder}: backfill those partitions "
            "of scoring/churn_score_buckets first"
        )
    files = [str(bucket_file(folder, b)) for b in range(buckets)]
    with duckdb.connect() as con:
        scores = con.execute(
            "select * exclude (filename) from read_parquet(?, filename = true) order by customer_id",
            [files],
        ).df()
        stale = con.execute(
            "select distinct filename from read_parquet(?, filename = true) "
            "where as_of_date <> ? or model_version <> ? order by 1",
            [files, as_of_date, str(model_version)],
        ).fetchall()
    if stale:
        raise ValueError(
            f"bucket files {[Path(f).name for (f,) in stale]} are not of as-of date {as_of_date} "
            f"scored by version {model_version}: backfill them again"
        )
    if len(scores) != expected_rows or scores["customer_id"].duplicated().any():
        raise ValueError(
            f"bucket files hold {len(scores)} rows ({scores['customer_id'].nunique()} customers) "
            f"but the snapshot of {as_of_date} has {expected_rows} customers"
        )
    return scores
