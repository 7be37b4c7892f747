"""Synthetic CRM generator: the embedded default data, with a hidden ground truth.

It simulates about two years of a subscription business month by month (see
docs/synthetic-world.md for the world and its dirt) and writes the raw contract tables of
``ml/data/contract.py`` into one folder, plus the truth (record -> person map and the true 90-day churn
probability of every active person on every month start) into another folder that the pipeline
never reads.

Design choices:

* Persons are simulated in fixed blocks of ``BLOCK_PERSONS``; each block has its own random
  generator seeded from ``(seed, block index)``. ``chunk_size`` only groups blocks into written row
  groups, so the data do not depend on it: chunked and unchunked runs give identical tables.
* Within a block everything is vectorised with numpy; the only Python loops run over months, event
  types and blocks.
* The latent path (engagement, tickets, plan changes, hazards) of a person is simulated for every
  month after sign-up whether or not the person churns; churn is then one draw against the
  hazards and only censors what is written. That makes the true probability at any as-of date well
  defined (``1 - prod(1 - h)`` over the realised latent path).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml.data.contract import RAW_TABLES
from ml.synthetic.config import (
    BLOCK_PERSONS,
    DAY,
    FileFormat,
    Grid,
    SyntheticConfig,
    epoch_seconds,
    month_grid,
)
from ml.synthetic.leads import LEAD_ID_COLUMN, generate_leads_with_truth
from ml.synthetic.params import (
    CHANNELS,
    CONSENT_CHANNEL_LABELS,
    CONTACT_CHANNELS,
    CONTACT_PURPOSES,
    CONTRACTS,
    EVENT_TYPES,
    GENDERS,
    ORDER_CATEGORIES,
    PLANS,
    RESPONSE_TYPES,
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
)
from ml.synthetic.rows import Block, simulate_block

ERASURE_REQUESTS = "erasure_requests"
"""The raw table written last: its requests name records of the whole run."""
TRUTH_TABLES: tuple[str, ...] = ("record_persons", "churn_truth", "campaign_truth")
"""Files (``<name>.parquet``) written into the truth folder."""
LEADS_FILE = "leads.csv"
"""The synthetic lead export (HubSpot-style columns, loaded through a mapping like a real one)."""
LEAD_TRUTH_FILE = "lead_truth.parquet"
"""Each lead's true log-odds of conversion (truth folder)."""


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate` wrote.

    Attributes:
        rows: Rows per raw table.
        truth_rows: Rows per truth table.
        paths: File per table name (raw and truth).
        persons: Simulated persons.
        seconds: Wall time of the run.
        churn_rate_90d: Share of active person-as-of rows that churned within 90 days (truth).
        oracle_auc: ROC AUC of the true probability against the realised churn over all truth rows
            (None when one class is missing).
        as_of_dates: The as-of dates of the truth (first of the month).
    """

    rows: dict[str, int]
    truth_rows: dict[str, int]
    paths: dict[str, Path]
    persons: int
    seconds: float
    churn_rate_90d: float
    oracle_auc: float | None = None
    as_of_dates: tuple[date, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# Arrow tables
# --------------------------------------------------------------------------------------------


def _ids(prefix: str, start: int, n: int, width: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _ts_array(seconds: np.ndarray, unit: str, missing: np.ndarray | None = None) -> pa.Array:
    values = seconds.astype("datetime64[s]").astype(f"datetime64[{unit}]")
    return pa.array(values, pa.timestamp(unit), mask=missing)


def _labels(values: np.ndarray, codes: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    arr = pc.take(pa.array(values.tolist(), pa.string()), pa.array(codes.astype(np.int64)))
    if missing is not None and missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)
    return arr


def _strings(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(values.astype(str) if values.dtype != object else values, pa.string())
    if missing is not None and missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)
    return arr


@dataclass
class _Counters:
    """Global id counters; ids are sequential over blocks in block order."""

    persons: int = 0
    records: int = 0
    subscriptions: int = 0
    orders: int = 0
    events: int = 0
    tickets: int = 0
    consents: int = 0
    campaigns: int = 0
    contacts: int = 0


def _block_tables(blk: Block, c: _Counters, grid: Grid, unit: str) -> dict[str, pa.Table]:
    """Turn a simulated block into Arrow tables in contract column order, assigning global ids."""
    rec_ids = _ids("R", c.records, blk.n_records, 7)
    person_ids = _ids("P", c.persons, blk.n_persons, 7)

    def rid(local: np.ndarray) -> pa.Array:
        return pc.take(rec_ids, pa.array(local.astype(np.int64)))

    cu = blk.customers
    cols: dict[str, dict[str, Any]] = {}
    cols["customers"] = {
        "customer_record_id": rec_ids,
        "full_name": _strings(cu["full_name"]),
        "email": _strings(cu["email"], cu["email_missing"]),
        "phone": _strings(cu["phone"], cu["phone_missing"]),
        "country": _strings(cu["country"], cu["country_missing"]),
        "birth_year": pa.array(cu["birth_year"], pa.int32(), mask=cu["birth_year_missing"]),
        "gender": _labels(GENDERS, cu["gender"], cu["gender_missing"]),
        "acquisition_channel": _labels(CHANNELS, cu["channel"], cu["channel_missing"]),
        "signed_up_at": _ts_array(cu["signed_up_at"], unit),
    }
    su = blk.subscriptions
    n_sub = len(su["started_at"])
    cols["subscriptions"] = {
        "subscription_id": _ids("S", c.subscriptions, n_sub, 8),
        "customer_record_id": rid(su["record"]),
        "plan": _labels(PLANS, su["plan"]),
        "contract_type": _labels(CONTRACTS, su["contract"]),
        "monthly_price": pa.array(np.round(su["price"], 2), pa.float64()),
        "started_at": _ts_array(su["started_at"], unit),
        "ended_at": _ts_array(su["ended_at"], unit, su["ended_at"] < 0),
        "end_reason": _labels(
            np.array(["", "plan_change", "price_change", "cancelled"]),
            su["end_reason"],
            su["end_reason"] == 0,
        ),
    }
    od = blk.orders
    n_ord = len(od["ordered_at"])
    cols["orders"] = {
        "order_id": _ids("O", c.orders, n_ord, 8),
        "customer_record_id": rid(od["record"]),
        "ordered_at": _ts_array(od["ordered_at"], unit),
        "amount": pa.array(od["amount"], pa.float64()),
        "product_category": _labels(ORDER_CATEGORIES, od["category"]),
        "status": _labels(np.array(["completed", "refunded"]), od["status"]),
    }
    ev = blk.events
    n_ev = len(ev["occurred_at"])
    # Exact duplicate rows: the same event (same id) exported twice, next to each other.
    take = np.sort(np.concatenate([np.arange(n_ev), np.flatnonzero(ev["duplicate"])]))
    cols["events"] = {
        "event_id": pc.take(_ids("E", c.events, n_ev, 10), pa.array(take)),
        "customer_record_id": rid(ev["record"][take]),
        "event_type": _labels(np.array(EVENT_TYPES), ev["event_type"][take]),
        "occurred_at": _ts_array(ev["occurred_at"][take], unit),
    }
    tk = blk.tickets
    n_tk = len(tk["opened_at"])
    cols["support_tickets"] = {
        "ticket_id": _ids("T", c.tickets, n_tk, 8),
        "customer_record_id": rid(tk["record"]),
        "opened_at": _ts_array(tk["opened_at"], unit),
        "category": _labels(TICKET_CATEGORIES, tk["category"]),
        "priority": _labels(TICKET_PRIORITIES, tk["priority"]),
        "resolved_at": _ts_array(tk["resolved_at"], unit, tk["resolved_at"] < 0),
        "satisfaction_score": pa.array(tk["satisfaction"], pa.int32(), mask=tk["satisfaction"] < 0),
    }
    co = blk.consents
    n_co = len(co["recorded_at"])
    cols["consents"] = {
        "consent_id": _ids("C", c.consents, n_co, 8),
        "customer_record_id": rid(co["record"]),
        "channel": _labels(CONSENT_CHANNEL_LABELS, co["channel"]),
        "status": _labels(np.array(["granted", "withdrawn"]), co["status"]),
        "recorded_at": _ts_array(co["recorded_at"], unit),
    }
    ca = blk.campaigns
    n_ca = len(ca["sent_at"])
    wave_names = np.array(
        [f"retention-{datetime.fromtimestamp(t, UTC):%Y-%m}" for t in grid.bounds[:-1]]
    )
    cols["campaigns"] = {
        "send_id": _ids("X", c.campaigns, n_ca, 8),
        "customer_record_id": rid(ca["record"]),
        "campaign_id": _labels(wave_names, ca["month"]),
        "campaign_type": _labels(np.array(["retention_offer"]), np.zeros(n_ca, np.int64)),
        "sent_at": _ts_array(ca["sent_at"], unit),
        "arm": _labels(np.array(["control", "treatment"]), ca["treated"].astype(np.int64)),
        "outcome": pa.array(ca["outcome"], pa.int32(), mask=ca["outcome"] < 0),
    }
    ct = blk.contacts
    n_ct = len(ct["contacted_at"])
    cols["contacts"] = {
        "contact_id": _ids("M", c.contacts, n_ct, 9),
        "customer_record_id": rid(ct["record"]),
        "channel": _labels(CONTACT_CHANNELS, ct["channel"]),
        "contacted_at": _ts_array(ct["contacted_at"], unit),
        "purpose": _labels(CONTACT_PURPOSES, ct["purpose"]),
    }
    out = {name: _to_table(name, cols[name]) for name in cols}

    tr = blk.truth
    as_of_days = np.array([(d - date(1970, 1, 1)).days for d in grid.as_of_dates], dtype=np.int32)[
        tr["as_of"] - grid.as_of_index[0]
    ]
    out["record_persons"] = pa.table(
        {
            "customer_record_id": rec_ids,
            "person_id": pc.take(person_ids, pa.array(blk.record_person.astype(np.int64))),
        }
    )
    out["churn_truth"] = pa.table(
        {
            "person_id": pc.take(person_ids, pa.array(tr["person"].astype(np.int64))),
            "as_of_date": pa.array(as_of_days, pa.date32()),
            "churn_probability_90d": pa.array(tr["probability"], pa.float64()),
            "churned_within_90d": pa.array(tr["churned"], pa.bool_()),
        }
    )
    ct = blk.campaign_truth
    out["campaign_truth"] = pa.table(
        {
            "send_id": cols["campaigns"]["send_id"],
            "person_id": pc.take(person_ids, pa.array(ca["person"].astype(np.int64))),
            "response_type": _labels(RESPONSE_TYPES, ct["response_type"]),
            "true_uplift": pa.array(ct["true_uplift"], pa.float64()),
        }
    )
    c.persons += blk.n_persons
    c.records += blk.n_records
    c.subscriptions += n_sub
    c.orders += n_ord
    c.events += n_ev
    c.tickets += n_tk
    c.consents += n_co
    c.campaigns += n_ca
    c.contacts += n_ct
    return out


def _to_table(name: str, columns: dict[str, Any]) -> pa.Table:
    table = RAW_TABLES[name]
    if tuple(columns) != table.column_names:  # a bug here, never a data problem
        raise RuntimeError(f"{name}: columns {tuple(columns)} != contract {table.column_names}")
    return pa.table(columns)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class _Sink:
    """Append row groups to ``<final>.tmp`` and move it to ``<final>`` only when complete."""

    def __init__(self, final: Path, file_format: FileFormat) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        self.file_format = file_format
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._schema = table.schema
            if self.file_format == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.tmp, table.schema)
        assert self._schema is not None
        table = table.cast(self._schema)
        if self.file_format == "parquet":
            # One row group per chunk keeps readers' memory bounded too.
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        assert self._writer is not None
        self._writer.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        if self._writer is not None:
            # Already failing: the original error matters more than one from closing.
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp.unlink(missing_ok=True)


def _chunks(config: SyntheticConfig) -> Iterator[list[int]]:
    """Blocks grouped into chunks of about ``chunk_size`` persons."""
    n_blocks = -(-config.customers // BLOCK_PERSONS)
    per_chunk = max(1, -(-config.chunk_size // BLOCK_PERSONS))
    for start in range(0, n_blocks, per_chunk):
        yield list(range(start, min(n_blocks, start + per_chunk)))


def generate(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> GenerationResult:
    """Simulate the synthetic CRM and write the raw contract tables and the hidden truth.

    Raw tables go to ``raw_dir/<table>.<parquet|csv>`` (columns in the order of
    ``ml.data.contract.RAW_TABLES``); the truth goes to ``truth_dir/record_persons.parquet`` and
    ``truth_dir/churn_truth.parquet``. Every file is written under a temporary name and renamed
    when all files are complete, so a crash never leaves a half-written file under a final name.
    A file of the other raw format for the same table is removed so the folder holds one source.

    Args:
        config: What to generate.
        raw_dir: Folder for the raw tables (created if missing).
        truth_dir: Folder for the truth (created if missing); the pipeline never reads it.

    Returns:
        Row counts, paths, timing, the truth's churn rate and oracle AUC.
    """
    started = time.perf_counter()
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    grid = month_grid(config)
    ext = "parquet" if config.file_format == "parquet" else "csv"
    unit = "us" if config.file_format == "parquet" else "s"
    sinks: dict[str, _Sink] = {
        name: _Sink(raw_dir / f"{name}.{ext}", config.file_format)
        for name in RAW_TABLES
        if name != ERASURE_REQUESTS
    }
    sinks.update({name: _Sink(truth_dir / f"{name}.parquet", "parquet") for name in TRUTH_TABLES})
    counters = _Counters()
    chunks = list(_chunks(config))
    positives = 0.0
    truth_rows = 0
    auc_parts: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        bar = _progress(config, sum(len(ch) for ch in chunks))
        for chunk in chunks:
            parts: dict[str, list[pa.Table]] = {name: [] for name in sinks}
            for block in chunk:
                blk = simulate_block(config, grid, block, block * BLOCK_PERSONS)
                positives += float(blk.truth["churned"].sum())
                truth_rows += len(blk.truth["churned"])
                auc_parts.append((blk.truth["probability"], blk.truth["churned"]))
                for name, tbl in _block_tables(blk, counters, grid, unit).items():
                    parts[name].append(tbl)
                if bar is not None:
                    bar.update(1)
            for name, tables in parts.items():
                sinks[name].write(pa.concat_tables(tables))
        if bar is not None:
            bar.close()
        requests = _erasure_requests(config, counters.records, unit)
        sinks[ERASURE_REQUESTS] = _Sink(raw_dir / f"{ERASURE_REQUESTS}.{ext}", config.file_format)
        sinks[ERASURE_REQUESTS].write(requests)
        for sink in sinks.values():
            sink.close()
        for sink in sinks.values():
            sink.commit()
    except BaseException:
        for sink in sinks.values():
            sink.discard()
        raise
    # Ingest refuses a table with two candidate files, so stale files of other formats go.
    for name in RAW_TABLES:
        for other in ("parquet", "csv", "csv.gz"):
            if other != ext:
                (raw_dir / f"{name}.{other}").unlink(missing_ok=True)
    if config.leads:
        _write_leads(config, raw_dir, truth_dir)
    probs = np.concatenate([p for p, _ in auc_parts])
    labels = np.concatenate([y for _, y in auc_parts])
    return GenerationResult(
        rows={name: sinks[name].rows for name in RAW_TABLES},
        truth_rows={name: sinks[name].rows for name in TRUTH_TABLES},
        paths={name: sink.final for name, sink in sinks.items()},
        persons=counters.persons,
        seconds=time.perf_counter() - started,
        churn_rate_90d=positives / truth_rows if truth_rows else 0.0,
        oracle_auc=_auc(probs, labels),
        as_of_dates=grid.as_of_dates,
    )


def _erasure_requests(config: SyntheticConfig, records: int, unit: str) -> pa.Table:
    """A few people asked to be forgotten: one request each, naming one of their records.

    Drawn from their own random stream, so the rest of the world does not change with them.
    """
    rng = np.random.default_rng([config.seed, 0xE7A5E])
    n = min(config.erasure_requests, records)
    chosen = np.sort(rng.choice(records, size=n, replace=False)).astype(np.int64)
    end = epoch_seconds(config.end_date)
    asked = end - rng.integers(1, 60, size=n) * DAY
    return _to_table(
        ERASURE_REQUESTS,
        {
            "request_id": _ids("ER", 0, n, 5),
            "customer_record_id": pc.take(_ids("R", 0, records, 7), pa.array(chosen)),
            "requested_at": _ts_array(asked, unit),
        },
    )


def _write_leads(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> None:
    """The lead export as CSV (as CRMs export it) and each lead's true log-odds, atomically."""
    export, true_logit = generate_leads_with_truth(
        config.leads, config.seed, config.start_date, config.end_date
    )
    final = raw_dir / LEADS_FILE
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    export.to_csv(tmp, index=False, date_format="%Y-%m-%d %H:%M:%S")
    truth = pa.table(
        {"lead_id": pa.array(export[LEAD_ID_COLUMN].astype(str)), "true_logit": true_logit}
    )
    pq.write_table(truth, truth_dir / LEAD_TRUTH_FILE)
    os.replace(tmp, final)


def _progress(config: SyntheticConfig, total: int) -> Any:
    if not config.progress:
        return None
    from tqdm import tqdm  # imported lazily: only the CLI shows a bar

    return tqdm(total=total, unit="block", desc=f"synthetic CRM ({BLOCK_PERSONS} persons/block)")


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC via the rank-sum formula (ties get average ranks); no sklearn import needed."""
    pos = int(labels.sum())
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m ml.synthetic.generator --customers N --seed S --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.synthetic.generator",
        description="Generate the synthetic CRM (raw + truth).",
    )
    parser.add_argument("--customers", type=int, default=SyntheticConfig.customers)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--out", type=Path, required=True, help="Folder for the raw tables.")
    parser.add_argument(
        "--truth", type=Path, default=None, help="Folder for the truth (default: OUT/../truth)."
    )
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--chunk-size", type=int, default=SyntheticConfig.chunk_size)
    parser.add_argument("--start-date", type=date.fromisoformat, default=SyntheticConfig.start_date)
    parser.add_argument("--end-date", type=date.fromisoformat, default=SyntheticConfig.end_date)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--event-share",
        type=float,
        default=SyntheticConfig.event_share,
        help="Share of the simulated events written (1.0: all, about 188 per person).",
    )
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        customers=args.customers,
        seed=args.seed,
        start_date=args.start_date,
        end_date=args.end_date,
        chunk_size=args.chunk_size,
        file_format=args.format,
        progress=not args.no_progress,
        event_share=args.event_share,
    )
    out: Path = args.out.expanduser().resolve()
    truth: Path = args.truth.expanduser().resolve() if args.truth else out.parent / "truth"
    result = generate(config, out, truth)
    print(
        f"{result.persons} persons in {result.seconds:.1f} s; "
        + ", ".join(f"{k} {v}" for k, v in result.rows.items())
        + f"; churn within 90 days {result.churn_rate_90d:.3f}; oracle AUC {result.oracle_auc:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
