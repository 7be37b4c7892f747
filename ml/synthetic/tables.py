"""Arrow tables of the simulated rows, and the files they are written to.

A block's rows (``ml.synthetic.rows.Block``) carry block-local person and record indices;
:func:`block_tables` assigns global ids in block order and orders the columns as the contract
(``ml.data.contract.RAW_TABLES``) does. :class:`Sink` appends them to a temporary file that
becomes the final one only when the whole run succeeded.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml.data.contract import RAW_TABLES
from ml.synthetic.config import DAY, FileFormat, Grid, SyntheticConfig, epoch_seconds
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
from ml.synthetic.rows import Block, Columns

ERASURE_REQUESTS = "erasure_requests"
"""The raw table written last: its requests name records of the whole run."""


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
class Counters:
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

    def advance(self, blk: Block) -> None:
        """Count a written block's rows, so that the next block's ids follow on."""
        self.persons += blk.n_persons
        self.records += blk.n_records
        self.subscriptions += len(blk.subscriptions["started_at"])
        self.orders += len(blk.orders["ordered_at"])
        self.events += len(blk.events["occurred_at"])
        self.tickets += len(blk.tickets["opened_at"])
        self.consents += len(blk.consents["recorded_at"])
        self.campaigns += len(blk.campaigns["sent_at"])
        self.contacts += len(blk.contacts["contacted_at"])


@dataclass(frozen=True)
class _BlockIds:
    """Global ids of a block's records and persons, looked up by block-local index."""

    records: pa.Array
    persons: pa.Array

    def record(self, local: np.ndarray) -> pa.Array:
        return pc.take(self.records, pa.array(local.astype(np.int64)))

    def person(self, local: np.ndarray) -> pa.Array:
        return pc.take(self.persons, pa.array(local.astype(np.int64)))


Arrays = dict[str, Any]


def _customer_columns(cu: Columns, ids: _BlockIds, unit: str) -> Arrays:
    return {
        "customer_record_id": ids.records,
        "full_name": _strings(cu["full_name"]),
        "email": _strings(cu["email"], cu["email_missing"]),
        "phone": _strings(cu["phone"], cu["phone_missing"]),
        "country": _strings(cu["country"], cu["country_missing"]),
        "birth_year": pa.array(cu["birth_year"], pa.int32(), mask=cu["birth_year_missing"]),
        "gender": _labels(GENDERS, cu["gender"], cu["gender_missing"]),
        "acquisition_channel": _labels(CHANNELS, cu["channel"], cu["channel_missing"]),
        "signed_up_at": _ts_array(cu["signed_up_at"], unit),
    }


def _subscription_columns(su: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    return {
        "subscription_id": _ids("S", first_id, len(su["started_at"]), 8),
        "customer_record_id": ids.record(su["record"]),
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


def _order_columns(od: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    return {
        "order_id": _ids("O", first_id, len(od["ordered_at"]), 8),
        "customer_record_id": ids.record(od["record"]),
        "ordered_at": _ts_array(od["ordered_at"], unit),
        "amount": pa.array(od["amount"], pa.float64()),
        "product_category": _labels(ORDER_CATEGORIES, od["category"]),
        "status": _labels(np.array(["completed", "refunded"]), od["status"]),
    }


def _event_columns(ev: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    n_ev = len(ev["occurred_at"])
    # Exact duplicate rows: the same event (same id) exported twice, next to each other.
    take = np.sort(np.concatenate([np.arange(n_ev), np.flatnonzero(ev["duplicate"])]))
    return {
        "event_id": pc.take(_ids("E", first_id, n_ev, 10), pa.array(take)),
        "customer_record_id": ids.record(ev["record"][take]),
        "event_type": _labels(np.array(EVENT_TYPES), ev["event_type"][take]),
        "occurred_at": _ts_array(ev["occurred_at"][take], unit),
    }


def _ticket_columns(tk: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    return {
        "ticket_id": _ids("T", first_id, len(tk["opened_at"]), 8),
        "customer_record_id": ids.record(tk["record"]),
        "opened_at": _ts_array(tk["opened_at"], unit),
        "category": _labels(TICKET_CATEGORIES, tk["category"]),
        "priority": _labels(TICKET_PRIORITIES, tk["priority"]),
        "resolved_at": _ts_array(tk["resolved_at"], unit, tk["resolved_at"] < 0),
        "satisfaction_score": pa.array(tk["satisfaction"], pa.int32(), mask=tk["satisfaction"] < 0),
    }


def _consent_columns(co: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    return {
        "consent_id": _ids("C", first_id, len(co["recorded_at"]), 8),
        "customer_record_id": ids.record(co["record"]),
        "channel": _labels(CONSENT_CHANNEL_LABELS, co["channel"]),
        "status": _labels(np.array(["granted", "withdrawn"]), co["status"]),
        "recorded_at": _ts_array(co["recorded_at"], unit),
    }


def _campaign_columns(ca: Columns, ids: _BlockIds, first_id: int, grid: Grid, unit: str) -> Arrays:
    n_ca = len(ca["sent_at"])
    wave_names = np.array(
        [f"retention-{datetime.fromtimestamp(t, UTC):%Y-%m}" for t in grid.bounds[:-1]]
    )
    return {
        "send_id": _ids("X", first_id, n_ca, 8),
        "customer_record_id": ids.record(ca["record"]),
        "campaign_id": _labels(wave_names, ca["month"]),
        "campaign_type": _labels(np.array(["retention_offer"]), np.zeros(n_ca, np.int64)),
        "sent_at": _ts_array(ca["sent_at"], unit),
        "arm": _labels(np.array(["control", "treatment"]), ca["treated"].astype(np.int64)),
        "outcome": pa.array(ca["outcome"], pa.int32(), mask=ca["outcome"] < 0),
    }


def _contact_columns(ct: Columns, ids: _BlockIds, first_id: int, unit: str) -> Arrays:
    return {
        "contact_id": _ids("M", first_id, len(ct["contacted_at"]), 9),
        "customer_record_id": ids.record(ct["record"]),
        "channel": _labels(CONTACT_CHANNELS, ct["channel"]),
        "contacted_at": _ts_array(ct["contacted_at"], unit),
        "purpose": _labels(CONTACT_PURPOSES, ct["purpose"]),
    }


def _truth_tables(
    blk: Block, ids: _BlockIds, send_ids: pa.Array, grid: Grid
) -> dict[str, pa.Table]:
    """The truth folder's tables: record -> person, churn truth, campaign truth."""
    tr = blk.truth
    as_of_days = np.array([(d - date(1970, 1, 1)).days for d in grid.as_of_dates], dtype=np.int32)[
        tr["as_of"] - grid.as_of_index[0]
    ]
    ct = blk.campaign_truth
    return {
        "record_persons": pa.table(
            {"customer_record_id": ids.records, "person_id": ids.person(blk.record_person)}
        ),
        "churn_truth": pa.table(
            {
                "person_id": ids.person(tr["person"]),
                "as_of_date": pa.array(as_of_days, pa.date32()),
                "churn_probability_90d": pa.array(tr["probability"], pa.float64()),
                "churned_within_90d": pa.array(tr["churned"], pa.bool_()),
            }
        ),
        "campaign_truth": pa.table(
            {
                "send_id": send_ids,
                "person_id": ids.person(blk.campaigns["person"]),
                "response_type": _labels(RESPONSE_TYPES, ct["response_type"]),
                "true_uplift": pa.array(ct["true_uplift"], pa.float64()),
            }
        ),
    }


def block_tables(blk: Block, c: Counters, grid: Grid, unit: str) -> dict[str, pa.Table]:
    """Turn a simulated block into Arrow tables in contract column order, assigning global ids."""
    ids = _BlockIds(
        records=_ids("R", c.records, blk.n_records, 7),
        persons=_ids("P", c.persons, blk.n_persons, 7),
    )
    cols: dict[str, Arrays] = {
        "customers": _customer_columns(blk.customers, ids, unit),
        "subscriptions": _subscription_columns(blk.subscriptions, ids, c.subscriptions, unit),
        "orders": _order_columns(blk.orders, ids, c.orders, unit),
        "events": _event_columns(blk.events, ids, c.events, unit),
        "support_tickets": _ticket_columns(blk.tickets, ids, c.tickets, unit),
        "consents": _consent_columns(blk.consents, ids, c.consents, unit),
        "campaigns": _campaign_columns(blk.campaigns, ids, c.campaigns, grid, unit),
        "contacts": _contact_columns(blk.contacts, ids, c.contacts, unit),
    }
    out = {name: to_table(name, cols[name]) for name in cols}
    out.update(_truth_tables(blk, ids, cols["campaigns"]["send_id"], grid))
    c.advance(blk)
    return out


def to_table(name: str, columns: dict[str, Any]) -> pa.Table:
    """A raw table from its columns, which must be the contract's, in its order."""
    table = RAW_TABLES[name]
    if tuple(columns) != table.column_names:  # a bug here, never a data problem
        raise RuntimeError(f"{name}: columns {tuple(columns)} != contract {table.column_names}")
    return pa.table(columns)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class Sink:
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


def erasure_requests_table(config: SyntheticConfig, records: int, unit: str) -> pa.Table:
    """A few people asked to be forgotten: one request each, naming one of their records.

    Drawn from their own random stream, so the rest of the world does not change with them.
    """
    rng = np.random.default_rng([config.seed, 0xE7A5E])
    n = min(config.erasure_requests, records)
    chosen = np.sort(rng.choice(records, size=n, replace=False)).astype(np.int64)
    end = epoch_seconds(config.end_date)
    asked = end - rng.integers(1, 60, size=n) * DAY
    return to_table(
        ERASURE_REQUESTS,
        {
            "request_id": _ids("ER", 0, n, 5),
            "customer_record_id": pc.take(_ids("R", 0, records, 7), pa.array(chosen)),
            "requested_at": _ts_array(asked, unit),
        },
    )
