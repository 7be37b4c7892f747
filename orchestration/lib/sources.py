"""Which models the loaded source can feed: a model whose tables are empty is skipped, saying
which file would enable it (``ml.data.sources.Needs``)."""

from __future__ import annotations

import dagster as dg

from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.data.sources import Needs, table_rows
from orchestration.lib.metadata import skipped


def missing_inputs(settings: Settings, needs: Needs) -> str | None:
    """Why the loaded source cannot feed the model (the missing tables and the files that would
    enable it), or None when it can."""
    with connect(settings.warehouse_path, read_only=True) as con:
        return needs.skip_reason(table_rows(con))


def skip_without_inputs(settings: Settings, needs: Needs) -> dg.MaterializeResult | None:
    """A "skipped" result naming the missing tables when the source lacks what the model needs;
    None when it can run."""
    reason = missing_inputs(settings, needs)
    return None if reason is None else skipped(reason)
