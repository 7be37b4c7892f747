"""Customer lifetime value on public data: BG/NBD + Gamma-Gamma against CatBoost (ml/models/customer_value/model.py).

    .venv/bin/python benchmarks/clv_public.py
    .venv/bin/python benchmarks/clv_public.py --data ../shared/data --threads 2

CDNOW (Fader & Hardie's cohort: 23,570 customers whose first purchase was in Q1 1997), standard
protocol: calibration 1997-01-01..1997-09-30 (39 weeks), holdout 1997-10-01..1998-06-30 (39
weeks, 273 days). Every customer joined in the first 12 weeks, so CatBoost cannot be trained one
horizon before the cutoff (nobody was a customer then); it is fitted by 2-fold cross-fitting over
customers on the holdout window (each half scored by the model fitted on the other half). That
lets CatBoost see the holdout period's level through other customers, which the baseline never
does: its CDNOW figures are optimistic. The baseline's fit is also checked on the 2,357-customer
CDNOW sample against the published parameters (r 0.243, alpha 4.414, a 0.793, b 2.426).

Online Retail (UCI, 2010-12-01..2011-12-09): lines without CustomerID, cancellations (InvoiceNo
starting with C) and non-positive quantity or price are dropped; an invoice's value is the sum of
Quantity x UnitPrice and its time the first line's. Calibration to 2011-06-30, holdout
2011-07-01..2011-12-09 (162 days). CatBoost is trained out of time (features at 2011-01-19,
targets 2011-01-20..2011-06-30; the headline) and, for comparison with CDNOW, by the customer split.

A purchase is a customer's day with an order (same-day orders or invoices count once) in
predictions and actuals alike. CatBoost's features are the RFM summary and the history aggregates
of ``ml.models.customer_value.model.history_features``, all from orders before the cutoff. The data are read from
``--data``, else ``CRM_PUBLIC_DATA``, else ``../shared/data`` beside the repository, and never
copied into it. Results are printed and written to ``benchmarks/results/clv-public.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.settings import Settings
from ml.modelling.boosting import flat_params, with_settings
from ml.models.customer_value.model import (
    ClvComparison,
    ClvConfig,
    compare_on_holdout,
    fit_baseline,
    rfm_summary,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CDNOW_CUTOFF = pd.Timestamp("1997-09-30")
CDNOW_HOLDOUT_END = pd.Timestamp("1998-06-30")
RETAIL_CUTOFF = pd.Timestamp("2011-06-30")
RETAIL_HOLDOUT_END = pd.Timestamp("2011-12-09")
PUBLISHED_CDNOW_SAMPLE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def _data_dir(cli_value: Path | None) -> Path:
    if cli_value is not None:
        return cli_value
    configured = Settings().public_data
    return configured if configured is not None else ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(
            f"{path} not found: pass --data or set CRM_PUBLIC_DATA to the folder of the public "
            "data sets (the one holding cdnow/ and online_retail/)."
        )
    return path


def load_cdnow(data_dir: Path, name: str = "master") -> pd.DataFrame:
    """CDNOW purchases as ``customer_id``, ``ordered_at``, ``amount``."""
    path = _require(data_dir / "cdnow" / f"cdnow_{name}_transactions.csv")
    raw = pd.read_csv(path, dtype={"customer_id": str, "date": str})
    # 80 purchases have a value of 0 (free CDs?): they are purchases for BG/NBD; Gamma-Gamma
    # leaves out customers whose mean repeat spend is 0.
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["dollar_value"].astype(float),
        }
    )


def load_online_retail(data_dir: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Online Retail invoices as ``customer_id``, ``ordered_at``, ``amount``, and row counts."""
    parts = sorted((data_dir / "online_retail").glob("online_retail_part*.csv.gz"))
    if len(parts) != 3:
        _require(data_dir / "online_retail" / "online_retail_part1_2010-12_to_2011-04.csv.gz")
        raise SystemExit(f"expected 3 Online Retail parts, found {len(parts)}")
    lines = pd.concat(
        [pd.read_csv(p, dtype={"InvoiceNo": str, "StockCode": str}) for p in parts],
        ignore_index=True,
    )
    keep = (
        lines["CustomerID"].notna()
        & ~lines["InvoiceNo"].str.startswith("C")
        & (lines["Quantity"] > 0)
        & (lines["UnitPrice"] > 0)
    )
    kept = lines.loc[keep].assign(
        line_value=lambda f: f["Quantity"] * f["UnitPrice"],
        ordered_at=lambda f: pd.to_datetime(f["InvoiceDate"]),
        customer_id=lambda f: f["CustomerID"].astype(int).astype(str),
    )
    invoices = kept.groupby("InvoiceNo").agg(
        customer_id=("customer_id", "first"),
        ordered_at=("ordered_at", "min"),
        amount=("line_value", "sum"),
    )
    counts = {
        "lines": len(lines),
        "lines_kept": int(keep.sum()),
        "invoices": len(invoices),
        "customers": int(invoices["customer_id"].nunique()),
    }
    return invoices.reset_index(drop=True), counts


def _summary(comparison: ClvComparison, seconds: float) -> dict[str, Any]:
    """Flat headline keys plus the full scores of one comparison (aggregates only)."""
    bg, cb = comparison.bgnbd, comparison.catboost
    return {
        "cutoff": comparison.cutoff.date().isoformat(),
        "horizon_days": comparison.horizon_days,
        "customers": comparison.customers,
        "catboost_protocol": comparison.catboost_protocol,
        "catboost_train_customers": comparison.catboost_train_customers,
        "purchases_mae": cb.purchases_mae,
        "value_mae": cb.value_mae,
        "bgnbd_purchases_mae": bg.purchases_mae,
        "bgnbd_value_mae": bg.value_mae,
        "actual_purchases": comparison.actual_purchases,
        "predicted_purchases": cb.predicted_purchases,
        "bgnbd_predicted_purchases": bg.predicted_purchases,
        "actual_value": comparison.actual_value,
        "winner": comparison.winner,
        "compare_seconds": round(seconds, 2),
        "bgnbd": asdict(bg),
        "catboost": asdict(cb),
        "baseline_params": comparison.baseline.to_dict(),
    }


def _compare(transactions: pd.DataFrame, cutoff: pd.Timestamp, config: ClvConfig) -> dict:
    started = time.perf_counter()
    comparison = compare_on_holdout(transactions, cutoff, config)
    return _summary(comparison, time.perf_counter() - started)


def cdnow_config(threads: int) -> ClvConfig:
    """The CLV settings of the CDNOW comparison: a 39-week holdout after the cutoff."""
    return with_settings(
        ClvConfig(), horizon_days=(CDNOW_HOLDOUT_END - CDNOW_CUTOFF).days, thread_count=threads
    )


def compare_cdnow(
    data_dir: Path, config: ClvConfig, customers: int | None = None
) -> dict[str, Any]:
    """BG/NBD + Gamma-Gamma against CatBoost on CDNOW master, 39 + 39 weeks.

    Args:
        data_dir: Folder of the public data sets.
        config: CLV settings (:func:`cdnow_config`, or fewer iterations for a smoke run).
        customers: Only the first this many customer ids (a smoke run); all when ``None``.
    """
    cdnow = load_cdnow(data_dir, "master")
    cdnow = cdnow.loc[cdnow["ordered_at"] <= CDNOW_HOLDOUT_END]
    if customers is not None:
        kept = cdnow["customer_id"].drop_duplicates().sort_values().head(customers)
        cdnow = cdnow.loc[cdnow["customer_id"].isin(kept)]
    return _compare(cdnow, CDNOW_CUTOFF, config)


def run(data_dir: Path, threads: int) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pymc_marketing.clv  # noqa: F401  (timed: the baseline's import cost)
    timings["import_pymc_marketing_seconds"] = round(time.perf_counter() - started, 2)

    sample = load_cdnow(data_dir, "sample")
    started = time.perf_counter()
    sample_fit = fit_baseline(rfm_summary(sample, CDNOW_CUTOFF))
    timings["baseline_fit_cdnow_sample_first_seconds"] = round(time.perf_counter() - started, 2)

    cdnow = load_cdnow(data_dir, "master")
    cdnow = cdnow.loc[cdnow["ordered_at"] <= CDNOW_HOLDOUT_END]
    started = time.perf_counter()
    master_summary = rfm_summary(cdnow, CDNOW_CUTOFF)
    timings["rfm_summary_cdnow_master_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    fit_baseline(master_summary)
    timings["baseline_fit_cdnow_master_seconds"] = round(time.perf_counter() - started, 2)

    cdnow_result = compare_cdnow(data_dir, cdnow_config(threads))

    retail, retail_counts = load_online_retail(data_dir)
    retail_config = with_settings(
        ClvConfig(),
        horizon_days=(RETAIL_HOLDOUT_END - RETAIL_CUTOFF).days,
        thread_count=threads,
        catboost_protocol="out_of_time",
    )
    retail_result = _compare(retail, RETAIL_CUTOFF, retail_config)
    retail_split = _compare(
        retail, RETAIL_CUTOFF, replace(retail_config, catboost_protocol="customer_split")
    )

    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "gpu": None,
            "python": platform.python_version(),
        },
        "versions": {
            pkg: version(pkg)
            for pkg in ("pymc-marketing", "pymc", "pytensor", "catboost", "pandas", "numpy")
        },
        "config": {
            "cdnow": flat_params(cdnow_config(threads)),
            "online_retail": flat_params(retail_config),
        },
        "timings": timings,
        "cdnow_sample_check": {
            "customers": sample_fit.customers,
            "fitted": asdict(sample_fit.bgnbd),
            "published": PUBLISHED_CDNOW_SAMPLE,
            "gamma_gamma": asdict(sample_fit.gamma_gamma),
        },
        "cdnow": {
            "data": "CDNOW master, 23,570 customers; calibration to 1997-09-30, holdout to "
            "1998-06-30",
            **cdnow_result,
        },
        "online_retail": {
            "data": "UCI Online Retail; calibration to 2011-06-30, holdout to 2011-12-09",
            "rows": retail_counts,
            **retail_result,
            "customer_split": retail_split,
        },
    }


def _print(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name}: {r['customers']} customers, holdout {r['horizon_days']} days after "
        f"{r['cutoff']}; CatBoost {r['catboost_protocol']} ({r['catboost_train_customers']} "
        f"training customers); {r['compare_seconds']:.1f} s"
    )
    print(
        f"  {'model':<10} {'purch MAE':>9} {'purch RMSE':>10} {'value MAE':>9} {'value RMSE':>10} "
        f"{'Spearman':>8} {'purch total':>11} {'err %':>6} {'value err %':>11}"
    )
    for label, key in (("BG/NBD+GG", "bgnbd"), ("CatBoost", "catboost")):
        s = r[key]
        print(
            f"  {label:<10} {s['purchases_mae']:>9.3f} {s['purchases_rmse']:>10.3f} "
            f"{s['value_mae']:>9.2f} {s['value_rmse']:>10.2f} {s['value_spearman']:>8.3f} "
            f"{s['predicted_purchases']:>11.0f} {s['purchases_total_error_pct']:>6.1f} "
            f"{s['value_total_error_pct']:>11.1f}"
        )
    print(
        f"  actual: {r['actual_purchases']:.0f} purchases, {r['actual_value']:.0f} value; "
        f"winner by value MAE: {r['winner']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="Folder of the public data sets.")
    parser.add_argument("--threads", type=int, default=2, help="CatBoost threads (at most 2 here).")
    args = parser.parse_args()

    result = run(_data_dir(args.data), args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "clv-public.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    check = result["cdnow_sample_check"]
    print(f"timings: {result['timings']}")
    print(f"CDNOW sample BG/NBD: fitted {check['fitted']}, published {check['published']}")
    _print("CDNOW", result["cdnow"])
    _print("Online Retail", result["online_retail"])
    _print("Online Retail (customer split)", result["online_retail"]["customer_split"])
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
