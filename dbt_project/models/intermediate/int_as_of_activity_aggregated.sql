-- One row per active customer per as_of_date: event counts in the windows before as_of_date.
-- Windows are half-open and end before as_of_date:
-- [as_of - 30d, as_of) and [as_of - 60d, as_of - 30d).
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='as_of',
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies() }}
with

customers_active as (

    select * from {{ ref('int_as_of_customers_active') }}
{%- if is_incremental() %}
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

daily_activity as (

    select * from {{ ref('int_customer_daily_activity') }}
{%- if is_incremental() %}
    -- the windows of the as-of dates in scope: from 60 days before the first, and the whole
    -- history of a changed person
    where activity_date >= (select rebuild_after from {{ ref('int_incremental_scope') }}) - 60
        or customer_id in (select customer_id from {{ ref('int_incremental_changed_customers') }})
{%- endif %}

),

login_days as (

    select
        customer_id,
        activity_date
    from {{ ref('int_customer_daily_activity') }}
    where logins > 0

),

windowed as (

    -- Range join on (customer, 60 days): at most 60 daily rows per grid row.
    select
        customers_active.customer_id,
        customers_active.as_of_date,
        sum(daily_activity.logins) filter (
            where daily_activity.activity_date >= customers_active.as_of_date - 30
        ) as logins_30d,
        sum(daily_activity.logins) filter (
            where daily_activity.activity_date < customers_active.as_of_date - 30
        ) as logins_31_60d,
        sum(daily_activity.feature_uses) filter (
            where daily_activity.activity_date >= customers_active.as_of_date - 30
        ) as feature_uses_30d,
        sum(daily_activity.email_opens) filter (
            where daily_activity.activity_date >= customers_active.as_of_date - 30
        ) as email_opens_30d,
        sum(daily_activity.email_clicks) filter (
            where daily_activity.activity_date >= customers_active.as_of_date - 30
        ) as email_clicks_30d,
        sum(daily_activity.pricing_page_visits) filter (
            where daily_activity.activity_date >= customers_active.as_of_date - 30
        ) as pricing_page_visits_30d,
        max(daily_activity.activity_date) filter (where daily_activity.logins > 0)
            as last_login_in_window
    from customers_active
    inner join daily_activity
        on customers_active.customer_id = daily_activity.customer_id
        and daily_activity.activity_date >= customers_active.as_of_date - 60
        and daily_activity.activity_date < customers_active.as_of_date
    group by customers_active.customer_id, customers_active.as_of_date

),

without_login_in_window as (

    select
        customers_active.customer_id,
        customers_active.as_of_date
    from customers_active
    left join windowed
        on customers_active.customer_id = windowed.customer_id
        and customers_active.as_of_date = windowed.as_of_date
    where windowed.last_login_in_window is null

),

their_login_days as (

    select * from login_days
    where customer_id in (select customer_id from without_login_in_window)

),

last_login_before_window as (

    -- The last login day before as_of_date, however long ago (an as-of join on DuckDB), for the
    -- rows the window has none for: the join sorts only those customers' login days (at 1M
    -- customers 5 s instead of 24 s for one as-of date, 50 s instead of 80 s for all).
    {{ last_before(
        'without_login_in_window', 'their_login_days', 'customer_id', 'as_of_date',
        'activity_date', 'last_login_date'
    ) }}

),

final as (

    select
        -- ids
        customers_active.customer_id,
        customers_active.as_of_date,
        -- numerics
        cast(coalesce(windowed.logins_30d, 0) as integer) as logins_30d,
        cast(coalesce(windowed.logins_31_60d, 0) as integer) as logins_31_60d,
        -- Float division on every engine (Spark and PostgreSQL would divide 1.0 as decimals).
        (cast(coalesce(windowed.logins_30d, 0) as {{ double_type() }}) + 1)
            / (cast(coalesce(windowed.logins_31_60d, 0) as {{ double_type() }}) + 1)
            as login_trend,
        cast(
            customers_active.as_of_date
                - coalesce(windowed.last_login_in_window, last_login_before_window.last_login_date)
            as integer
        ) as days_since_last_login,
        cast(coalesce(windowed.feature_uses_30d, 0) as integer) as feature_uses_30d,
        cast(coalesce(windowed.email_opens_30d, 0) as integer) as email_opens_30d,
        cast(coalesce(windowed.email_clicks_30d, 0) as integer) as email_clicks_30d,
        cast(coalesce(windowed.pricing_page_visits_30d, 0) as integer) as pricing_page_visits_30d
    from customers_active
    left join windowed
        on customers_active.customer_id = windowed.customer_id
        and customers_active.as_of_date = windowed.as_of_date
    left join last_login_before_window
        on customers_active.customer_id = last_login_before_window.customer_id
        and customers_active.as_of_date = last_login_before_window.as_of_date

)

select * from final
