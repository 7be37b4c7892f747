"""Settings of one synthetic CRM and the month grid they define."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np

BLOCK_PERSONS = 1_000
"""Persons per random-generator block. Fixed so that the data do not depend on ``chunk_size``."""

SHIFT_MONTHS = 9
"""Months of sign-ups at the end of the data that a covariate shift changes."""

DAY = 86_400
"""Seconds per day."""

FileFormat = Literal["parquet", "csv"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of one synthetic CRM.

    Attributes:
        customers: Number of persons (records are more: some persons have duplicates).
        seed: Seed; the same config always gives the same data.
        start_date: First day of the simulated history (the product goes live).
        end_date: Snapshot date: the last day with data in the raw tables.
        duplicate_share: Share of persons with 2-3 customer records.
        leads: Number of leads in the lead export (``ml.synthetic.leads``); 0 writes none.
        erasure_requests: Persons who asked to be forgotten (``erasure_requests`` table).
        chunk_size: Persons held in memory before a row group is written (rounded up to whole
            blocks of ``BLOCK_PERSONS``). It bounds memory and does not change the data.
        file_format: ``parquet`` or ``csv`` for the raw tables (the truth is always Parquet).
        progress: Show a tqdm progress bar over blocks.
        event_share: Share of the simulated activity events written to the events table (each
            kept independently, from its own random stream). 1.0, the default, writes every
            event (about 188 per person); the scale benchmark uses less to reach a given event
            volume (0.266: about 50 per person). The persons, their engagement and churn are
            simulated the same; the data show fewer events, and below 1.0 the later random
            draws (which duplicate record holds a ticket, the dirt rows) differ.
        covariate_shift: Share (0..1) of the persons signing up in the last
            ``SHIFT_MONTHS`` months of data whose acquisition changed (``ml.synthetic.world.
            shift_acquisition``): monthly contract, basic plan, lower engagement. Who the
            customers are moves; how churn follows from what the CRM records does not (a
            covariate shift, the case performance estimation must survive). 0.0, the default,
            draws nothing more: the world is the same draw for draw.
    """

    customers: int = 20_000
    seed: int = 42
    start_date: date = date(2024, 10, 1)
    end_date: date = date(2026, 9, 30)
    duplicate_share: float = 0.06
    leads: int = 20_000
    erasure_requests: int = 3
    chunk_size: int = 50_000
    file_format: FileFormat = "parquet"
    progress: bool = False
    event_share: float = 1.0
    covariate_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.leads < 0:
            raise ValueError("leads must be >= 0")
        if not 0.0 <= self.duplicate_share <= 1.0:
            raise ValueError("duplicate_share must be in [0, 1]")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.file_format not in ("parquet", "csv"):
            raise ValueError("file_format must be 'parquet' or 'csv'")
        if not 0.0 < self.event_share <= 1.0:
            raise ValueError("event_share must be in (0, 1]")
        if not 0.0 <= self.covariate_shift <= 1.0:
            raise ValueError("covariate_shift must be in [0, 1]")
        if add_months(self.start_date, 4) > self.end_date:
            raise ValueError("end_date must be at least four months after start_date")


def add_months(d: date, months: int) -> date:
    """The first of the month ``months`` after the month of ``d``."""
    idx = d.year * 12 + d.month - 1 + months
    return date(idx // 12, idx % 12 + 1, 1)


def epoch_seconds(d: date) -> int:
    """Midnight UTC of ``d`` in seconds since 1970: the time unit of the whole simulation."""
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Grid:
    """Month boundaries of the simulation (epoch seconds, UTC)."""

    bounds: np.ndarray  # (months + 1,) int64; bounds[0] = start_date, then first of each month
    month_of_year: np.ndarray  # (months,) 0..11
    data_months: int  # months that contain data up to end_date
    snapshot_end: int  # end_date + 1 day: nothing at or after it is written
    as_of_index: np.ndarray  # month indices of the truth as-of dates
    as_of_dates: tuple[date, ...]

    @property
    def months(self) -> int:
        return len(self.bounds) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)


def month_grid(config: SyntheticConfig) -> Grid:
    """The months from ``start_date`` to ``end_date``, three more, and the truth's as-of dates."""
    starts = [config.start_date]
    k = 1
    while add_months(config.start_date, k) <= config.end_date:
        starts.append(add_months(config.start_date, k))
        k += 1
    data_months = len(starts)
    # Three more months past the snapshot so that the last as-of date (the month after
    # end_date) has a complete 90-day window in the truth.
    starts += [add_months(config.start_date, data_months + i) for i in range(4)]
    bounds = np.array([epoch_seconds(d) for d in starts], dtype=np.int64)
    as_of_index = np.arange(3, data_months + 1)
    return Grid(
        bounds=bounds,
        month_of_year=np.array([d.month - 1 for d in starts[:-1]]),
        data_months=data_months,
        snapshot_end=epoch_seconds(config.end_date + timedelta(days=1)),
        as_of_index=as_of_index,
        as_of_dates=tuple(starts[i] for i in as_of_index),
    )
