"""Customer lifetime value on public data: BG/NBD + Gamma-Gamma against CatBoost and the hybrid (ml/models/customer_value/model.py).

    .venv/bin/python benchmarks/clv_public.py
    .venv/bin/python benchmarks/clv_public.py --data ../shared/data --threads 2
    .venv/bin/python benchmarks/clv_public.py --no-pipeline   # skip the end-to-end run

CDNOW (Fader & Hardie's cohort: 23,570 customers whose first purchase was in Q1 1997), out of
time in three 26-week windows of the 78 weeks to 1998-06-30: CatBoost and the hybrid are trained
on the features at 1997-07-01 and the purchases in 1997-07-02..1997-12-30, then judged at
1997-12-30 on 1997-12-31..1998-06-30 against BG/NBD + Gamma-Gamma fitted on the orders up to
1997-12-30 (the same protocol as Online Retail's; every customer had joined by 1997-03-31, so
each is known at the training date). The classic 39 + 39-week split cannot train anything out of
time (nobody was a customer 39 weeks before its cutoff); it is kept for the baseline's check on
the 2,357-customer CDNOW sample against the published parameters (r 0.243, alpha 4.414, a
0.793, b 2.426). ``bgnbd_level`` records BG/NBD's total forecast error in the training window and
in the judged one: the correction the hybrid learns in the first is the one it applies in the
second.

Online Retail (UCI, 2010-12-01..2011-12-09): lines without CustomerID, cancellations (InvoiceNo
starting with C) and non-positive quantity or price are dropped; an invoice's value is the sum of
Quantity x UnitPrice and its time the first line's. Calibration to 2011-06-30, holdout
2011-07-01..2011-12-09 (162 days). CatBoost is trained out of time (features at 2011-01-19,
targets 2011-01-20..2011-06-30; the headline) and, for comparison with CDNOW, by the customer split.

The hybrid (CatBoost correcting the BG/NBD + Gamma-Gamma forecast, ``fit_hybrid_regressor``) is
trained and judged by the same protocol as CatBoost on each data set: out of time on Online
Retail and CDNOW (its baseline features at the training date from a baseline fitted on the
orders up to then, at the cutoff from the one fitted up to the cutoff). Online Retail
also reports the hybrid with CatBoost's own settings (``hybrid_settings``: 400 rounds at 0.05)
beside its default (100 at 0.03).

A purchase is a customer's day with an order (same-day orders or invoices count once) in
predictions and actuals alike. Only an out-of-time backtest picks the method
(``decide_winner``); after the customer split the baseline is kept and CatBoost's figures are
reported only.

**Transaction log without amounts** (``transaction_log`` of each data set): the same orders with
every amount removed, as a source that records only who bought when. The models are then fitted
on purchases (no Gamma-Gamma, no value regressor), compared on purchases MAE, and the winner is
refitted at the end of the holdout and scores every customer (365-day horizon): the figures are
the protocol, the purchase errors, the customers scored and the seconds. For Online Retail the
whole pipeline also runs end to end on the raw export through
``examples/online_retail/mapping.yaml`` (``online_retail_pipeline``: ``orchestration.run
retraining_job`` in a temporary ``CRM_HOME``; wall time, seconds per step, rows loaded and
quarantined, customers scored, the backtest protocol and decision as the run states them). CatBoost's features are the RFM summary and the history aggregates
of ``ml.models.customer_value.model.history_features``, all from orders before the cutoff. The data are read from
``--data``, else ``CRM_PUBLIC_DATA``, else ``../shared/data`` beside the repository, and never
copied into it. Results are printed and written to ``benchmarks/results/clv-public.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
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
    fit_clv,
    holdout_actuals,
    predict_clv,
    rfm_summary,
    without_amounts,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CDNOW_CUTOFF = pd.Timestamp("1997-09-30")
CDNOW_HOLDOUT_END = pd.Timestamp("1998-06-30")
# Out of time on CDNOW: three 26-week windows (train at 1997-07-01, judge at 1997-12-30).
CDNOW_HORIZON_DAYS = 182
CDNOW_JUDGED_AT = CDNOW_HOLDOUT_END - pd.Timedelta(days=CDNOW_HORIZON_DAYS)
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
    bg, cb, hy = comparison.bgnbd, comparison.catboost, comparison.hybrid
    hybrid = (
        {}
        if hy is None
        else {
            "hybrid_purchases_mae": hy.purchases_mae,
            "hybrid_value_mae": hy.value_mae,
            "hybrid_predicted_purchases": hy.predicted_purchases,
        }
    )
    return {
        "cutoff": comparison.cutoff.date().isoformat(),
        "horizon_days": comparison.horizon_days,
        "customers": comparison.customers,
        "backtest_protocol": comparison.protocol,
        "decided_by": comparison.decided_by,
        "catboost_protocol": comparison.catboost_protocol,
        "catboost_train_customers": comparison.catboost_train_customers,
        "purchases_mae": cb.purchases_mae,
        "value_mae": cb.value_mae,
        "bgnbd_purchases_mae": bg.purchases_mae,
        "bgnbd_value_mae": bg.value_mae,
        **hybrid,
        "actual_purchases": comparison.actual_purchases,
        "predicted_purchases": cb.predicted_purchases,
        "bgnbd_predicted_purchases": bg.predicted_purchases,
        "actual_value": comparison.actual_value,
        "winner": comparison.winner,
        "compare_seconds": round(seconds, 2),
        "bgnbd": asdict(bg),
        "catboost": asdict(cb),
        **({} if hy is None else {"hybrid": asdict(hy)}),
        "baseline_params": comparison.baseline.to_dict(),
    }


def _compare(transactions: pd.DataFrame, cutoff: pd.Timestamp, config: ClvConfig) -> dict:
    started = time.perf_counter()
    comparison = compare_on_holdout(transactions, cutoff, config)
    return _summary(comparison, time.perf_counter() - started)


def transaction_log(
    transactions: pd.DataFrame, cutoff: pd.Timestamp, end: pd.Timestamp, config: ClvConfig
) -> dict[str, Any]:
    """The orders without amounts: compared on purchases, the winner refitted at ``end`` and
    scoring every customer known then (365-day horizon, as the pipeline serves)."""
    # fit_clv reads the orders up to the day ``end`` (all of its hours) itself.
    orders = without_amounts(transactions)
    started = time.perf_counter()
    comparison = compare_on_holdout(orders, cutoff, config)
    compare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    served = replace(config, horizon_days=365)
    model = fit_clv(orders, end, comparison.winner, served)
    scored = predict_clv(model, orders)
    score_seconds = time.perf_counter() - started
    bg, cb, hy = comparison.bgnbd, comparison.catboost, comparison.hybrid
    hybrid = (
        {}
        if hy is None
        else {
            "hybrid_purchases_mae": hy.purchases_mae,
            "hybrid_purchases_spearman": hy.purchases_spearman,
            "hybrid_predicted_purchases": hy.predicted_purchases,
        }
    )
    return {
        "backtest_protocol": comparison.protocol,
        "judged_on": comparison.judged_on,
        "decided_by": comparison.decided_by,
        "value_columns": comparison.value_reason,
        "winner": comparison.winner,
        "customers": comparison.customers,
        "actual_purchases": comparison.actual_purchases,
        "bgnbd_purchases_mae": bg.purchases_mae,
        "catboost_purchases_mae": cb.purchases_mae,
        "bgnbd_purchases_spearman": bg.purchases_spearman,
        "catboost_purchases_spearman": cb.purchases_spearman,
        "bgnbd_predicted_purchases": bg.predicted_purchases,
        "catboost_predicted_purchases": cb.predicted_purchases,
        **hybrid,
        "compare_seconds": round(compare_seconds, 2),
        "scored_at": end.date().isoformat(),
        "customers_scored": len(scored),
        "scored_value_null": bool(scored["expected_value_12m"].isna().all()),
        "expected_purchases_365d": float(scored["expected_purchases_12m"].sum()),
        "refit_and_score_seconds": round(score_seconds, 2),
    }


def online_retail_pipeline(data_dir: Path, threads: int) -> dict[str, Any]:
    """``make run`` on the raw Online Retail export through examples/online_retail/mapping.yaml,
    in a temporary ``CRM_HOME``: what the run states, no path of the machine."""
    _require(data_dir / "online_retail")
    manifest = ROOT / "dbt_project" / "target" / "manifest.json"
    if not manifest.is_file():
        subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "parse", "--profiles-dir", ".", "--quiet"],
            cwd=ROOT / "dbt_project",
            check=True,
        )
    with tempfile.TemporaryDirectory(prefix="crm-clv-") as home:
        summary_path = Path(home) / "summary.json"
        env = {
            **os.environ,
            "CRM_HOME": home,
            "DAGSTER_HOME": str(Path(home) / "dagster"),
            "CRM_SOURCE": str((data_dir / "online_retail").resolve()),
            "CRM_MAPPING": str(ROOT / "examples" / "online_retail" / "mapping.yaml"),
            "CRM_THREADS": str(threads),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MPLBACKEND": "Agg",
        }
        (Path(home) / "dagster").mkdir()
        shutil.copy(ROOT / "orchestration" / "dagster.yaml", Path(home) / "dagster")
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestration.run",
                "retraining_job",
                "--summary-json",
                str(summary_path),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        run = json.loads(summary_path.read_text())
    meta = run["metadata"]
    model, served, raw = (
        meta["models/customer_value"],
        meta["serving/customer_value"],
        meta["raw/orders"],
    )
    return {
        "mapping": "examples/online_retail/mapping.yaml",
        "success": run["success"],
        "wall_seconds": round(wall, 1),
        "step_seconds": {k: round(v, 1) for k, v in run["step_seconds"].items() if v >= 0.5},
        "rows_loaded": raw["dagster/row_count"],
        "rows_quarantined": raw["rows_quarantined"],
        "customers_scored": served["dagster/row_count"],
        "backtest_protocol": model["backtest_protocol"],
        "decided_by": model["decided_by"],
        "value_columns": served["value_columns"],
        "bgnbd_purchases_mae": model["bgnbd_purchases_mae"],
        "catboost_purchases_mae": model["catboost_purchases_mae"],
        "hybrid_purchases_mae": model.get("hybrid_purchases_mae"),
        "skipped_models": sorted({k.split("/")[1] for k, m in meta.items() if m.get("skipped")}),
    }


def hybrid_settings(
    transactions: pd.DataFrame, cutoff: pd.Timestamp, config: ClvConfig
) -> dict[str, dict[str, float]]:
    """The hybrid's purchases and value MAE with its default rounds and step, and with
    CatBoost's own (``CLV_BOOSTING``): the measured reason for ``ClvConfig.hybrid_iterations``."""
    out = {}
    for rounds, step in (
        (config.hybrid_iterations, config.hybrid_learning_rate),
        (config.boosting.iterations, config.boosting.learning_rate),
    ):
        tried = replace(config, hybrid_iterations=rounds, hybrid_learning_rate=step)
        hybrid = compare_on_holdout(transactions, cutoff, tried).hybrid
        assert hybrid is not None  # config.hybrid is on
        out[f"{rounds} rounds at {step:g}"] = {
            "purchases_mae": hybrid.purchases_mae,
            "value_mae": hybrid.value_mae,
        }
    return out


def cdnow_config(threads: int) -> ClvConfig:
    """The CLV settings of the CDNOW comparison: out of time, 26-week windows."""
    return with_settings(
        ClvConfig(),
        horizon_days=CDNOW_HORIZON_DAYS,
        thread_count=threads,
        catboost_protocol="out_of_time",
    )


def bgnbd_level(
    transactions: pd.DataFrame, cutoff: pd.Timestamp, config: ClvConfig
) -> dict[str, float]:
    """BG/NBD's total purchase forecast error (%) in the training window of the out-of-time
    protocol and in the judged window: a bias that differs between them is a correction the
    hybrid learns in one and misapplies in the other."""
    out = {}
    for name, as_of in (
        ("train_window", cutoff - pd.Timedelta(days=config.horizon_days)),
        ("judged_window", cutoff),
    ):
        summary = rfm_summary(transactions, as_of, period_days=config.period_days)
        forecast = fit_baseline(summary, config.period_days).predict(summary, config.horizon_days)
        actual = holdout_actuals(transactions, as_of, config.horizon_days)["purchases"].sum()
        predicted = float(forecast["expected_purchases"].sum())
        out[f"{name}_total_error_pct"] = round(100 * (predicted / actual - 1), 2)
    return out


def compare_cdnow(
    data_dir: Path, config: ClvConfig, customers: int | None = None
) -> dict[str, Any]:
    """BG/NBD + Gamma-Gamma against CatBoost and the hybrid on CDNOW master, out of time.

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
    return _compare(cdnow, CDNOW_JUDGED_AT, config) | {
        "bgnbd_level": bgnbd_level(cdnow, CDNOW_JUDGED_AT, config)
    }


def online_retail_config(threads: int) -> ClvConfig:
    """The CLV settings of the Online Retail comparison: out of time, a 162-day holdout."""
    return with_settings(
        ClvConfig(),
        horizon_days=(RETAIL_HOLDOUT_END - RETAIL_CUTOFF).days,
        thread_count=threads,
        catboost_protocol="out_of_time",
    )


def compare_online_retail(
    data_dir: Path, config: ClvConfig, customers: int | None = None
) -> dict[str, Any]:
    """BG/NBD + Gamma-Gamma against CatBoost and the hybrid on Online Retail, out of time.

    Args:
        data_dir: Folder of the public data sets.
        config: CLV settings (:func:`online_retail_config`, or fewer iterations for a smoke run).
        customers: Only the first this many customer ids (a smoke run); all when ``None``.
    """
    retail, _ = load_online_retail(data_dir)
    if customers is not None:
        kept = retail["customer_id"].drop_duplicates().sort_values().head(customers)
        retail = retail.loc[retail["customer_id"].isin(kept)]
    return _compare(retail, RETAIL_CUTOFF, config)


def run(data_dir: Path, threads: int, pipeline: bool = True) -> dict[str, Any]:
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
    retail_config = online_retail_config(threads)
    retail_result = _compare(retail, RETAIL_CUTOFF, retail_config)
    retail_split = _compare(
        retail, RETAIL_CUTOFF, replace(retail_config, catboost_protocol="customer_split")
    )
    retail_hybrid_settings = hybrid_settings(retail, RETAIL_CUTOFF, retail_config)
    cdnow_log = transaction_log(cdnow, CDNOW_JUDGED_AT, CDNOW_HOLDOUT_END, cdnow_config(threads))
    retail_log = transaction_log(retail, RETAIL_CUTOFF, RETAIL_HOLDOUT_END, retail_config)
    retail_pipeline = online_retail_pipeline(data_dir, threads) if pipeline else None

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
            "data": "CDNOW master, 23,570 customers; out of time: trained at 1997-07-01 on the "
            "26 weeks after, judged at 1997-12-30 on the 26 weeks to 1998-06-30",
            **cdnow_result,
            "transaction_log": cdnow_log,
        },
        "online_retail": {
            "data": "UCI Online Retail; calibration to 2011-06-30, holdout to 2011-12-09",
            "rows": retail_counts,
            **retail_result,
            "customer_split": retail_split,
            "hybrid_settings": retail_hybrid_settings,
            "transaction_log": retail_log,
            "pipeline": retail_pipeline,
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
    for label, key in (("BG/NBD+GG", "bgnbd"), ("CatBoost", "catboost"), ("Hybrid", "hybrid")):
        if key not in r:
            continue
        s = r[key]
        print(
            f"  {label:<10} {s['purchases_mae']:>9.3f} {s['purchases_rmse']:>10.3f} "
            f"{s['value_mae']:>9.2f} {s['value_rmse']:>10.2f} {s['value_spearman']:>8.3f} "
            f"{s['predicted_purchases']:>11.0f} {s['purchases_total_error_pct']:>6.1f} "
            f"{s['value_total_error_pct']:>11.1f}"
        )
    print(
        f"  actual: {r['actual_purchases']:.0f} purchases, {r['actual_value']:.0f} value; "
        f"winner: {r['winner']} ({r['decided_by']})"
    )


def _print_log(name: str, r: dict[str, Any]) -> None:
    print(f"{name}, transaction log without amounts: {r['backtest_protocol']}")
    print(
        f"  purchases MAE BG/NBD {r['bgnbd_purchases_mae']:.3f}, CatBoost "
        f"{r['catboost_purchases_mae']:.3f}, hybrid "
        f"{r.get('hybrid_purchases_mae', float('nan')):.3f}; "
        f"winner {r['winner']}; {r['customers_scored']} "
        f"customers scored at {r['scored_at']} (value null: {r['scored_value_null']}); "
        f"{r['compare_seconds']:.1f} s + {r['refit_and_score_seconds']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="Folder of the public data sets.")
    parser.add_argument("--threads", type=int, default=2, help="CatBoost threads (at most 2 here).")
    parser.add_argument(
        "--no-pipeline",
        action="store_true",
        help="Skip the end-to-end Online Retail run (about 50 s).",
    )
    args = parser.parse_args()

    result = run(_data_dir(args.data), args.threads, pipeline=not args.no_pipeline)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "clv-public.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    check = result["cdnow_sample_check"]
    print(f"timings: {result['timings']}")
    print(f"CDNOW sample BG/NBD: fitted {check['fitted']}, published {check['published']}")
    _print("CDNOW", result["cdnow"])
    _print("Online Retail", result["online_retail"])
    _print("Online Retail (customer split)", result["online_retail"]["customer_split"])
    _print_log("CDNOW", result["cdnow"]["transaction_log"])
    _print_log("Online Retail", result["online_retail"]["transaction_log"])
    if (pipe := result["online_retail"]["pipeline"]) is not None:
        print(
            f"Online Retail end to end ({pipe['mapping']}): {pipe['wall_seconds']} s, "
            f"{pipe['customers_scored']} customers scored; {pipe['decided_by']}"
        )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
