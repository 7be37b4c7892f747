"""The planted covariate shift of the generator: off by default, and when on it moves the mix
of late sign-ups only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ml.synthetic.config import SHIFT_MONTHS, SyntheticConfig, add_months
from ml.synthetic.generator import generate

CUSTOMERS = 4_000


def _mix(raw: Path, end: str) -> tuple[float, float]:
    """Share of month-to-month first subscriptions among sign-ups before and from ``end``."""
    row = duckdb.sql(
        f"""
        with first as (
            select customer_record_id, arg_min(contract_type, started_at) as contract,
                min(started_at) as started
            from '{raw / "subscriptions.parquet"}' group by customer_record_id
        )
        select avg((contract = 'month-to-month')::int) filter (where started < '{end}'),
               avg((contract = 'month-to-month')::int) filter (where started >= '{end}')
        from first
        """
    ).fetchall()[0]
    return float(row[0]), float(row[1])


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    out = {}
    for shift in (0.0, 0.8):
        root = tmp_path_factory.mktemp(f"shift{shift}")
        config = SyntheticConfig(customers=CUSTOMERS, seed=5, leads=0, covariate_shift=shift)
        generate(config, root / "raw", root / "truth")
        out[shift] = root / "raw"
    return out


def test_shift_moves_late_signups_to_monthly_contracts(worlds: dict[float, Path]) -> None:
    config = SyntheticConfig()
    start = add_months(config.end_date, -(SHIFT_MONTHS - 1))  # first shifted sign-up month
    early_plain, late_plain = _mix(worlds[0.0], str(start))
    early_shift, late_shift = _mix(worlds[0.8], str(start))
    assert early_shift == pytest.approx(early_plain, abs=0.03)
    assert late_plain < 0.7 < late_shift  # 0.55 of the draw, plus 0.8 of the other 0.45


def test_shift_is_off_by_default() -> None:
    assert SyntheticConfig().covariate_shift == 0.0
    with pytest.raises(ValueError, match="covariate_shift"):
        SyntheticConfig(covariate_shift=1.5)
