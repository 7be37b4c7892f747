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
from ml.synthetic.rows import Block

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


def block_tables(blk: Block, c: Counters, grid: Grid, unit: str) -> dict[str, pa.Table]:
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
    out = {name: to_table(name, cols[name]) for name in cols}

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


def to_table(name: str, columns: dict[str, Any]) -> pa.Table:
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
