-- The event days this run recomputes. raw_changed: the day's raw events differ from the last
-- complete build (rows or checksum, a day added or gone), the day is within the lookback
-- (var incremental_lookback_days, counted back from the newest event day not in the future), or a run that did not
-- complete left it pending. The other rows are days of the other copies of an event id seen on
-- such a day: which copy is kept (base_crm__events) can change there too. history_rewrite: a
-- day of the last complete build changed although it is older than the lookback (a late
-- correction); it is recomputed like any other, and the data test incremental_history_rewritten
-- warns about it.
{{ config(post_hook="{{ record_pending_scope('pending_days') }}") }}

with

current_days as (

    select * from {{ ref('int_change_event_days') }}

),

previous_days as (

    {{ previous_state('event_days', 'select * from current_days where false') }}

),

pending as (

    {{ previous_state('pending_days', 'select
        cast(null as date) as activity_date,
        cast(null as boolean) as raw_changed,
        cast(null as boolean) as history_rewrite,
        cast(null as bigint) as previous_rows,
        cast(null as bigint) as current_rows
    where false') }}

),

raw_events as (

    select
        trim(event_id) as event_id,
        cast(occurred_at as date) as activity_date
    from {{ source('raw', 'events') }}

),

{%- set previous_events = previous_model('staging', 'base_crm__events') %}

newest_day as (

    select max(activity_date) as activity_date
    from current_days
    where activity_date <= cast({{ max_valid_timestamp() }} as date)

),

differing_days as (

    select
        coalesce(current_days.activity_date, previous_days.activity_date) as activity_date,
        previous_days.row_count as previous_rows,
        current_days.row_count as current_rows
    from current_days
    full outer join previous_days
        on current_days.activity_date = previous_days.activity_date
    where current_days.row_count is distinct from previous_days.row_count
        or current_days.checksum is distinct from previous_days.checksum

),

raw_changed_days as (

    select activity_date from differing_days

    union

    -- the lookback counts back from the newest day that is not in the future; a future day is
    -- recomputed when its rows change or it stops being in the future (its checksum changes)
    select activity_date
    from current_days
    where activity_date > (select activity_date from newest_day)
        - {{ var('incremental_lookback_days') }}
        and activity_date <= (select activity_date from newest_day)

    union

    select activity_date from pending where raw_changed

),

keys_on_changed_days as (

    select event_id
    from raw_events
{%- if state_relation('event_days') is none %}
    -- the first build: every day is changed, so no copy lies on another day (at 1M customers
    -- looking would join 50M events with themselves)
    where false
{%- else %}
    where activity_date in (select activity_date from raw_changed_days)
{%- endif %}
{%- if previous_events is not none %}

    union

    -- the previous build's rows of those days: a key whose row left the day keeps its copies
    select event_id
    from {{ previous_events }}
    where cast(occurred_at as date) in (select activity_date from raw_changed_days)
{%- endif %}

),

copy_days as (

    select distinct raw_events.activity_date
    from raw_events
    inner join keys_on_changed_days
        on raw_events.event_id = keys_on_changed_days.event_id

),

final as (

    select
        raw_changed_days.activity_date,
        true as raw_changed,
        coalesce(
            differing_days.activity_date <= (select activity_date from newest_day)
                - {{ var('incremental_lookback_days') }}
            and exists (select 1 from previous_days),
            false
        ) as history_rewrite,
        differing_days.previous_rows,
        differing_days.current_rows
    from raw_changed_days
    left join differing_days
        on raw_changed_days.activity_date = differing_days.activity_date
    where raw_changed_days.activity_date is not null

    union all

    select
        copy_days.activity_date,
        false as raw_changed,
        false as history_rewrite,
        cast(null as bigint) as previous_rows,
        cast(null as bigint) as current_rows
    from copy_days
    where copy_days.activity_date is not null
        and copy_days.activity_date not in (
            select activity_date from raw_changed_days where activity_date is not null
        )

)

select * from final
