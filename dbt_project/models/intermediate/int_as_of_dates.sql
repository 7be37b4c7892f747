-- The as-of grid: one row per as_of_date, the first day of every month from
-- `as_of_warmup_months` after the first subscription start up to the month after the snapshot
-- date (the latest valid event timestamp, as a date). Features use data before an as_of_date;
-- labels use the `churn_horizon_days` after it, observed only if they end by the snapshot.
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

events as (

    select * from {{ ref('stg_crm__events') }}

),

bounds as (

    select
        (
            select cast(min(started_at) as date)
                + interval '{{ var('as_of_warmup_months') }} month'
            from subscription_periods
        ) as warmup_end,
        coalesce(
            (select cast(max(occurred_at) as date) from events),
            cast({{ max_valid_timestamp() }} as date)
        ) as snapshot_date

),

month_starts as (

    select
        -- first day of a month on or after the end of the warm-up
        case
            when extract(day from warmup_end) = 1 then warmup_end
            else cast(date_trunc('month', warmup_end) + interval '1 month' as date)
        end as first_as_of_date,
        cast(date_trunc('month', snapshot_date) + interval '1 month' as date) as last_as_of_date,
        snapshot_date
    from bounds

),

grid as (

    select
        {{ month_series('first_as_of_date', 'last_as_of_date') }} as as_of_date,
        snapshot_date
    from month_starts
    where first_as_of_date <= last_as_of_date

),

final as (

    select
        as_of_date,
        snapshot_date,
        as_of_date + {{ var('churn_horizon_days') }} as label_window_end,
        as_of_date + {{ var('churn_horizon_days') }} <= snapshot_date + 1 as label_available
    from grid

)

select * from final
