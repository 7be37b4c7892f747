"""Retraining policy: threshold, cool-down and the reason text the sensor writes into run tags."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ml.modelling.retraining import RetrainDecision, should_retrain

NOW = datetime(2026, 9, 2, 12, 0)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("share", "last", "expected"),
    [
        (0.42, None, RetrainDecision(True, "drift share 0.42 >= 0.30")),
        (0.30, None, RetrainDecision(True, "drift share 0.30 >= 0.30")),  # at the threshold
        (0.10, None, RetrainDecision(False, "drift share 0.10 < 0.30")),
        (0.10, NOW - timedelta(hours=1), RetrainDecision(False, "drift share 0.10 < 0.30")),
        (
            0.42,
            NOW - timedelta(hours=1),
            RetrainDecision(
                False, "drift share 0.42 >= 0.30 but cooling down until 2026-09-03T11:00:00"
            ),
        ),
        (0.42, NOW - DAY, RetrainDecision(True, "drift share 0.42 >= 0.30")),  # cool-down over
        (0.42, NOW - 2 * DAY, RetrainDecision(True, "drift share 0.42 >= 0.30")),
        (None, None, RetrainDecision(False, "no drift report yet")),
    ],
)
def test_should_retrain(
    share: float | None, last: datetime | None, expected: RetrainDecision
) -> None:
    assert should_retrain(share, 0.30, last, NOW, DAY) == expected


def test_zero_cooldown_always_allows() -> None:
    assert should_retrain(0.5, 0.3, NOW, NOW, timedelta(0)).retrain
