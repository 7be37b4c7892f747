-- Warns about days without a single event among the 60 days before the newest event day (not in
-- the future): a delivery that never arrived, or an export that dropped a day. The features of
-- those days count no activity until the day is delivered; the run that loads it finds the day
-- changed and recomputes it.
{{ config(severity='warn') }}

with

event_days as (

    select activity_date
    from {{ ref('int_change_event_days') }}
    where activity_date <= cast({{ max_valid_timestamp() }} as date)

),

bounds as (

    select
        greatest(min(activity_date), max(activity_date) - 60) as first_day,
        max(activity_date) as last_day
    from event_days

),

calendar as (

    select {{ day_series('first_day', 'last_day') }} as activity_date
    from bounds
    where first_day is not null

)

select calendar.activity_date as missing_day
from calendar
where calendar.activity_date not in (select activity_date from event_days)
