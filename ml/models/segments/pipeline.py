"""Segmentation's life cycle: refitted on every run (no registry), assigned, profiled, logged.

KMeans on the behaviour of the newest snapshot: the same data and seed give the same segments
and names (segment 1 is always the most valuable), so a refit every run is stable and always
describes the customers of today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.data.sources import Needs
from ml.models.segments.model import (
    SegmentConfig,
    SegmentModel,
    assign_segments,
    fit_segments,
    profile,
)

NEEDS = Needs("segments", tables=("customers", "subscriptions"), uses=("events", "orders"))
"""The source tables the model needs rows in (``ml.data.sources``)."""

EXPERIMENT = "segments"


@dataclass(frozen=True, eq=False)
class Segmentation:
    """One run's segments.

    Attributes:
        model: Centres, scaling and names.
        assigned: The rows of ``serving.customer_segments``.
        profiles: The rows of ``serving.segment_profiles``.
    """

    model: SegmentModel
    assigned: pd.DataFrame
    profiles: pd.DataFrame

    def run_record(self) -> tuple[dict[str, Any], dict[str, float], Mapping[str, Any]]:
        """Parameters, metrics and JSON artifacts of the MLflow run (aggregates only)."""
        as_of = self.assigned["as_of_date"].iloc[0]
        return (
            {**self.model.config.to_dict(), "as_of_date": str(as_of)},
            {"segments": float(self.model.n_segments), "customers": float(len(self.assigned))},
            {
                "segment_model.json": self.model.to_dict(),
                "segment_profiles.json": self.profiles.astype({"as_of_date": str}).to_dict(
                    "records"
                ),
            },
        )


def train_and_score(frame: pd.DataFrame, config: SegmentConfig | None = None) -> Segmentation:
    """Fit the segments on the snapshot, assign every customer and profile every segment.

    Args:
        frame: ``ml.models.segments.data.read_segmentation_inputs``.
        config: Segmentation settings.
    """
    model = fit_segments(frame, config or SegmentConfig())
    assigned = assign_segments(model, frame)
    profiles = profile(model, assigned, frame)
    profiles.insert(0, "as_of_date", assigned["as_of_date"].iloc[0])
    return Segmentation(model, assigned, profiles)
