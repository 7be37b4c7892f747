"""How a Great Expectations result is shown on an asset check in the UI."""

import dagster as dg

from expectations.runner import SuiteResult


def suite_metadata(result: SuiteResult) -> dict[str, dg.MetadataValue]:
    failed = "\n".join(
        f"| {f.expectation} | {f.column or ''} | {f.unexpected_count} | {f.observed} |"
        for f in result.failed
    )
    table = "| expectation | column | unexpected | observed |\n|---|---|---|---|\n" + failed
    return {
        "suite": dg.MetadataValue.text(result.suite_name),
        "evaluated": dg.MetadataValue.int(result.evaluated),
        "failed": dg.MetadataValue.int(len(result.failed)),
        "failures": dg.MetadataValue.md(table if result.failed else "none"),
        "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
    }
