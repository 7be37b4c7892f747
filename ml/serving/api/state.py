"""What one service process holds: the champions, and the newest warehouse snapshot in memory.

Champions: which version is champion is asked of the registry at most every
``serve_champion_ttl_seconds``; a new version is loaded once and then served, so promoting or
rolling back a model reaches the service without a restart. A version is loaded at most once.

The warehouse: DuckDB lets one process write a file only while no other process holds it open,
even read-only (measured: a writer then fails with "Conflicting lock is held"). A service that kept
a connection open would stop the next pipeline run. So the service opens the file read-only,
reads the newest feature snapshot (with what is typical for the reasons, the erased ids and the
next best action's inputs) into memory and closes it again; it reads again when the warehouse
or the tombstones file changes. While a run holds the file, the last snapshot is served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ml.core.settings import Settings
from ml.core.warehouse import connect, table_exists
from ml.data.erasure import erased_customer_ids
from ml.data.features import read_scoring_features
from ml.data.tombstones import TOMBSTONES_FILE
from ml.modelling.registry import Registry, champion_version, load_version
from ml.models.churn.data import read_typical_values
from ml.models.next_best_action.data import DecisionInputs, read_decision_inputs
from ml.serving.tables import read_published, serving_table

log = logging.getLogger(__name__)


class NotReadyError(RuntimeError):
    """What a request needs is not there yet (no champion, no scored warehouse)."""


@dataclass(frozen=True)
class Champion:
    """A loaded champion: the registered model's name, its version and the model object."""

    name: str
    version: str
    model: Any


class Champions:
    """The champion of each registered model, re-checked in the registry every ``ttl`` seconds."""

    def __init__(
        self, registry: Registry, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._registry = registry
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._checked: dict[str, tuple[float, Champion]] = {}
        self._loaded: dict[tuple[str, str], Any] = {}

    def get(self, name: str) -> Champion:
        """The champion of ``name``.

        Raises:
            NotReadyError: No version of ``name`` is champion yet.
        """
        with self._lock:
            now = self._clock()
            checked = self._checked.get(name)
            if checked is not None and now - checked[0] < self._ttl:
                return checked[1]
            version = champion_version(self._registry, name)
            if version is None:
                raise NotReadyError(f"no champion for {name!r} yet: run the pipeline first")
            model = self._loaded.get((name, version))
            if model is None:
                model = load_version(self._registry, name, version)
                self._loaded[(name, version)] = model
                log.info("serving %s version %s", name, version)
            champion = Champion(name, version, model)
            self._checked[name] = (now, champion)
            return champion


@dataclass(frozen=True, eq=False)
class WarehouseSnapshot:
    """The newest scoring snapshot of the warehouse, in memory.

    Attributes:
        as_of_date: The snapshot's as-of date.
        features: ``read_scoring_features`` indexed by ``customer_id`` (erased ids removed).
        typical: ``read_typical_values`` of the snapshot (what the churn reasons call typical).
        erased: Ids that must answer "not found" (``ml.data.erasure.erased_customer_ids``).
        decisions: The next best action's inputs (None before the first published scores).
        published: The published rows of ``serving.customer_scores`` of the as-of date, indexed
            by ``customer_id`` (empty before the first publish): a customer whose features the
            champion already scored is answered with its row, as a daily batch run keeps it.
    """

    as_of_date: date
    features: pd.DataFrame
    typical: dict[str, float]
    erased: frozenset[str]
    decisions: DecisionInputs | None
    published: pd.DataFrame


def read_snapshot(settings: Settings, cap_periods_days: Sequence[int]) -> WarehouseSnapshot:
    """Read the snapshot from the warehouse (read-only; the file is closed again).

    Raises:
        NotReadyError: The warehouse has no feature snapshot yet.
        duckdb.IOException: A pipeline run holds the file.
    """
    if not settings.warehouse_path.is_file():
        raise NotReadyError(f"no warehouse yet at {settings.warehouse_path.name}: run the pipeline")
    with connect(settings.warehouse_path, read_only=True, threads=1, memory_limit="1GB") as con:
        if not table_exists(con, "marts", "customer_features"):
            raise NotReadyError("the warehouse has no feature snapshot yet: run the pipeline")
        features = read_scoring_features(con)
        if features.empty:
            raise NotReadyError("the warehouse has no feature snapshot yet: run the pipeline")
        typical = read_typical_values(con)
        ids = features["customer_id"].astype(str)
        erased = erased_customer_ids(con, settings.erasure_dir, settings.salt(), ids.tolist())
        as_of_date = pd.Timestamp(features["as_of_date"].iloc[0]).date()
        scores = serving_table("customer_scores")
        published = table_exists(con, "serving", scores.name)
        decisions = read_decision_inputs(con, cap_periods_days) if published else None
        rows = (
            read_published(con, scores, as_of_date)
            if published
            else pd.DataFrame({name: pd.Series(dtype=object) for name in scores.column_names})
        )
    features = features.loc[~ids.isin(erased).to_numpy()]
    features = features.set_index(features["customer_id"].astype(str), drop=False)
    rows = rows.loc[~rows["customer_id"].astype(str).isin(erased).to_numpy()]
    return WarehouseSnapshot(
        as_of_date=as_of_date,
        features=features,
        typical=typical,
        erased=erased,
        decisions=decisions,
        published=rows.set_index(rows["customer_id"].astype(str), drop=False),
    )


class Snapshots:
    """The current :class:`WarehouseSnapshot`, read again when its files change.

    The files' modification times are looked at no more than every ``ttl`` seconds.
    """

    def __init__(
        self,
        settings: Settings,
        cap_periods_days: Sequence[int],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._periods = tuple(cap_periods_days)
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: WarehouseSnapshot | None = None
        self._stamp: tuple[int, ...] | None = None
        self._checked_at = float("-inf")

    def _files_stamp(self) -> tuple[int, ...]:
        files = (
            self._settings.warehouse_path,
            Path(self._settings.erasure_dir) / TOMBSTONES_FILE,
        )
        return tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in files)

    def current(self) -> WarehouseSnapshot:
        """The snapshot, read again first when the warehouse or the tombstones changed.

        Raises:
            NotReadyError: There is no snapshot, and none can be read now.
        """
        with self._lock:
            now = self._clock()
            if self._snapshot is None or now - self._checked_at >= self._ttl:
                self._checked_at = now
                stamp = self._files_stamp()
                if stamp != self._stamp or self._snapshot is None:
                    try:
                        self._snapshot = read_snapshot(self._settings, self._periods)
                        self._stamp = stamp
                        log.info("read the warehouse snapshot of %s", self._snapshot.as_of_date)
                    except duckdb.IOException:
                        # A pipeline run is writing: serve the last snapshot, try again later.
                        log.warning("warehouse is busy; serving the last snapshot")
            if self._snapshot is None:
                raise NotReadyError("the warehouse cannot be read yet (a run may be writing it)")
            return self._snapshot
