"""The synthetic generator's event volume setting (``SyntheticConfig.event_share``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ml.synthetic.generator import SyntheticConfig, generate


def _tables(root: Path, share: float) -> dict[str, object]:
    config = SyntheticConfig(customers=600, leads=0, event_share=share)
    generate(config, root / "raw", root / "truth")
    return {
        "events": pq.read_table(root / "raw" / "events.parquet"),
        "customers": pq.read_table(root / "raw" / "customers.parquet"),
        "subscriptions": pq.read_table(root / "raw" / "subscriptions.parquet"),
        "truth": {p.name: pq.read_table(p) for p in sorted((root / "truth").glob("*.parquet"))},
    }


def test_a_share_thins_the_events_and_keeps_the_world(tmp_path: Path) -> None:
    full = _tables(tmp_path / "full", 1.0)
    thin = _tables(tmp_path / "thin", 0.25)
    ratio = thin["events"].num_rows / full["events"].num_rows  # type: ignore[attr-defined]
    assert 0.22 < ratio < 0.28
    # The persons, their subscriptions and the hidden truth (churn) are the same world.
    assert thin["customers"].equals(full["customers"])  # type: ignore[attr-defined]
    assert thin["subscriptions"].equals(full["subscriptions"])  # type: ignore[attr-defined]
    assert thin["truth"].keys() == full["truth"].keys()  # type: ignore[attr-defined]
    for name, table in full["truth"].items():  # type: ignore[attr-defined]
        assert thin["truth"][name].equals(table), name  # type: ignore[index]


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_a_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="event_share"):
        SyntheticConfig(event_share=share)
