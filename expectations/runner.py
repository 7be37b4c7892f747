"""Apply a Great Expectations suite to a pandas data frame and return a small typed result.

GX 1.x cannot validate DuckDB through SQLAlchemy, so tables are validated as frames (row-level
checks on very large tables are left to dbt tests). Each call uses a fresh ephemeral context:
nothing is written to disk and no state is shared between validations. ``great_expectations``
takes seconds to import, so it is imported inside :func:`validate_frame` only.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

_PARTIAL_UNEXPECTED = 5
_OBSERVED_CHARS = 200


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold.

    Attributes:
        expectation: Expectation type, e.g. ``expect_column_values_to_be_unique``.
        column: The column (comma-joined for multi-column expectations), None for table-level.
        unexpected_count: Rows breaking it, None for aggregate expectations.
        observed: Short text of what was seen (observed value, mismatched columns, or a few
            unexpected values).
    """

    expectation: str
    column: str | None
    unexpected_count: int | None
    observed: str


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of one suite on one frame."""

    suite_name: str
    success: bool
    evaluated: int
    failed: tuple[FailedExpectation, ...]
    seconds: float

    def failures_of(self, expectation: str, column: str | None = None) -> list[FailedExpectation]:
        """Failed expectations of one type (and column, if given), for checks and tests."""
        return [
            f
            for f in self.failed
            if f.expectation == expectation and (column is None or f.column == column)
        ]


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    for key in ("column_list", "column_A"):
        if kwargs.get(key) is not None:
            if key == "column_A":
                return f"{kwargs['column_A']},{kwargs['column_B']}"
            return ",".join(str(c) for c in kwargs[key])
    return None


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result and result.get("details", {}).get("mismatched") is not None:
        text = f"{result['observed_value']!r}; mismatched {result['details']['mismatched']!r}"
    elif "observed_value" in result:
        text = repr(result["observed_value"])
    elif result.get("partial_unexpected_list") is not None:
        text = "e.g. " + repr(result["partial_unexpected_list"][:_PARTIAL_UNEXPECTED])
    else:
        text = ""
    return text[:_OBSERVED_CHARS]


def _exception_message(info: Any) -> str | None:
    """The first error message of a result (e.g. a missing column), whatever the nesting."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        message = _exception_message(value)
        if message:
            return message
    return None


def validate_frame(frame: pd.DataFrame, suite: gx.ExpectationSuite) -> SuiteResult:
    """Validate a data frame against a suite in a fresh ephemeral GX context.

    Args:
        frame: The data (e.g. a DuckDB table fetched with ``.df()``).
        suite: A suite from :mod:`expectations.suites`. It is copied, so the same suite object
            can be validated many times.

    Returns:
        The suite's verdict with one entry per failed expectation.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    started = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    # Progress bars would flood Dagster's captured logs with one bar per metric.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas(name="frames")
        .add_dataframe_asset(name="frame")
        .add_batch_definition_whole_dataframe(name="whole_frame")
    )
    # A fresh copy: a suite added to a context is bound to it (and gets ids), so the caller's
    # object stays reusable.
    own_suite = context.suites.add(
        gx.ExpectationSuite(
            name=f"{suite.name}_{uuid.uuid4().hex[:8]}",
            expectations=[e.copy(update={"id": None}) for e in suite.expectations],
        )
    )
    validation = gx.ValidationDefinition(data=batch, suite=own_suite, name="validation")
    outcome = validation.run(
        batch_parameters={"dataframe": frame},
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": _PARTIAL_UNEXPECTED,
        },
    )
    failed = []
    for r in outcome.results:
        if r.success:
            continue
        config = r.expectation_config
        result = dict(r.result or {})
        message = _exception_message(r.exception_info)
        if message:
            result.setdefault("observed_value", message)
        failed.append(
            FailedExpectation(
                expectation=str(config.type) if config else "unknown",
                column=_column_of(dict(config.kwargs)) if config else None,
                unexpected_count=(
                    int(result["unexpected_count"])
                    if result.get("unexpected_count") is not None
                    else None
                ),
                observed=_observed(result),
            )
        )
    return SuiteResult(
        suite_name=suite.name,
        success=bool(outcome.success),
        evaluated=len(outcome.results),
        failed=tuple(failed),
        seconds=time.perf_counter() - started,
    )
