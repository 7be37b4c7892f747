"""Regular against approximate SHAP of the churn champion: seconds, and whether the drivers agree.

    CRM_HOME=/tmp/shap-home make run          # once: a synthetic CRM, dbt, a trained champion
    CRM_HOME=/tmp/shap-home .venv/bin/python benchmarks/shap_speed.py --rows 100000 1000000

The churn champion of ``CRM_HOME`` (``--home``) explains rows of ``marts.customer_features``
(its training as-of dates and the newest one, the rows the pipeline really scores), resampled
with a fixed seed to each size of ``--rows``. For each size one CatBoost Pool is built and every
mode computes SHAP values on that same Pool: the churn model has monotone constraints, with which
CatBoost's SHAP values depend on the batch they are computed in (catboost issue 1956), so both
modes see the same batch. The agreement is :func:`ml.modelling.explanations.driver_agreement`
of each mode against regular: top-1, same top-3 set, same top-3 order (drivers ranked by
|SHAP| as ``ml.models.churn.explain`` ranks them) and the largest difference of a contribution.
``--score`` also times ``score_customers`` (scores, bands, drivers and reasons) in each mode.
The modes take turns ``--repeats`` times (2) and each keeps its best time: on a shared machine
a slow spell then does not fall on one mode alone.
A batch check compares the regular SHAP values of the first rows computed alone with the same
rows inside the full batch.

Results: ``benchmarks/results/shap-speed.json`` (``--out``), with the machine; no path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ROWS = (100_000, 1_000_000)
BATCH_CHECK_ROWS = 10_000
SEED = 0
_GB = 2**30

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _GB),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _say(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


def _load(home: Path) -> tuple[Any, str, pd.DataFrame, Any]:
    """The churn champion, its version, the feature rows to resample and the settings."""
    os.environ["CRM_HOME"] = str(home)
    from ml.core.settings import Settings
    from ml.core.warehouse import connect
    from ml.data.features import read_newest_as_of_date, read_reference_features
    from ml.modelling.registry import Registry, load_champion

    settings = Settings()
    registry = Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    model, version = load_champion(registry, "churn")
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as con:
        dates = sorted({*model.training_as_of_dates, read_newest_as_of_date(con)})
        frame = read_reference_features(con, dates)
    return model, str(version), frame, settings


def _resample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    picked = rng.choice(len(frame), size=rows, replace=rows > len(frame))
    out = frame.iloc[picked].reset_index(drop=True)
    # Distinct keys, so a scored frame is a valid serving table whatever the resampling did.
    out["customer_id"] = [f"R{i:08d}" for i in range(rows)]
    return out


def measure_size(
    model: Any,
    version: str,
    source: pd.DataFrame,
    rows: int,
    modes: list[str],
    score: bool,
    repeats: int = 1,
) -> dict[str, Any]:
    """Time each SHAP mode on one Pool of ``rows`` rows and compare it with regular."""
    from ml.modelling.explanations import driver_agreement, shap_contributions
    from ml.models.churn.scoring import score_customers

    frame = _resample(source, rows)
    pool, pool_s = _timed(lambda: model.pool(model.prepare(frame)))
    out: dict[str, Any] = {
        "rows": rows,
        "repeats": repeats,
        "pool_s": round(pool_s, 2),
        "modes": {},
    }
    values: dict[str, np.ndarray] = {}
    # Modes take turns, so a slow spell of the shared machine does not fall on one mode alone;
    # each mode's best time counts.
    best: dict[str, float] = {}
    for _ in range(repeats):
        for mode in modes:
            values[mode], seconds = _timed(
                lambda m=mode, p=pool: shap_contributions(model.booster, p, m)  # type: ignore[misc]
            )
            best[mode] = min(seconds, best.get(mode, np.inf))
    for mode in modes:
        seconds = best[mode]
        out["modes"][mode] = {"shap_s": round(seconds, 2), "us_per_row": 1e6 * seconds / rows}
        _say(f"{rows:,} rows, {mode}: {seconds:.1f} s ({1e6 * seconds / rows:.1f} us a row)")
    for mode in modes:
        if mode != "regular":
            agreement = driver_agreement(values["regular"], values[mode], k=3)
            out["modes"][mode]["agreement_with_regular"] = agreement.as_dict()
            out["modes"][mode]["speed_up"] = round(
                out["modes"]["regular"]["shap_s"] / max(out["modes"][mode]["shap_s"], 1e-9), 2
            )
            _say(f"{rows:,} rows, {mode} against regular: {agreement}")
    # catboost#1956: the same rows alone and inside the batch.
    head = min(BATCH_CHECK_ROWS, rows)
    alone = shap_contributions(model.booster, model.pool(model.prepare(frame.head(head))))
    out["batch_dependence"] = {
        "rows": head,
        "max_abs_difference_regular": float(np.abs(alone - values["regular"][:head]).max()),
        "same_top3_order_regular": driver_agreement(values["regular"][:head], alone).same_order,
    }
    del values
    if score:
        scored: dict[str, float] = {}
        for _ in range(repeats):
            for mode in modes:
                _, seconds = _timed(
                    lambda m=mode: score_customers(  # type: ignore[misc]
                        model, frame, "churn", version, datetime.now(UTC), shap_mode=m
                    )
                )
                scored[mode] = min(seconds, scored.get(mode, np.inf))
        out["score_customers_s"] = {mode: round(seconds, 2) for mode, seconds in scored.items()}
        for mode, seconds in scored.items():
            _say(f"{rows:,} rows, score_customers with {mode} SHAP: {seconds:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("CRM_HOME", ROOT / "var")),
        help="CRM_HOME holding a warehouse and a churn champion (make run)",
    )
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument(
        "--modes", nargs="+", default=["regular", "approximate"], help="regular approximate exact"
    )
    parser.add_argument("--score", action="store_true", help="also time score_customers")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timings per mode, taking turns (the best counts)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "shap-speed.json")
    args = parser.parse_args(argv)
    if "regular" not in args.modes:
        parser.error("--modes must include regular (the reference)")
    sys.path.insert(0, str(ROOT))

    (model, version, source, settings), load_s = _timed(lambda: _load(args.home.resolve()))
    _say(f"champion churn v{version}, {len(source):,} feature rows to resample ({load_s:.1f} s)")
    result: dict[str, Any] = {
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "threads": settings.threads,
        "model": {
            "name": "churn",
            "version": version,
            "iterations": int(model.booster.tree_count_),
            "features": len(model.feature_names),
            "monotone_constraints": bool(model.booster.get_params().get("monotone_constraints")),
        },
        "source_rows": len(source),
        "customers": settings.synthetic_customers,
        "sizes": [
            measure_size(model, version, source, rows, args.modes, args.score, args.repeats)
            for rows in args.rows
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _say(
        f"wrote {args.out.resolve().relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
