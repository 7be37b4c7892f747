-- Warns when event days older than the lookback changed since the last complete build: a late
-- correction of history. The incremental run recomputed them (every as-of date after the first
-- such day), so the tables are right; the warning says a source rewrites old data, which makes
-- incremental runs as slow as that day is old. Each row: the day and its rows before and now.
{{ config(severity='warn') }}

select
    activity_date,
    previous_rows,
    current_rows
from {{ ref('int_incremental_changed_days') }}
where history_rewrite
