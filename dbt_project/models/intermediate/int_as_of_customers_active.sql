-- One row per customer per as_of_date at which the customer is active: a subscription period
-- started strictly before as_of_date and had not ended before it. Carries the subscription
-- features, all computed from periods that started before as_of_date. An end date on or after
-- as_of_date is only compared with as_of_date, so its value cannot leak into a feature.
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='as_of',
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies() }}
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

periods_started_before as (

    select
        subscription_periods.*,
        as_of_dates.as_of_date
    from as_of_dates
    inner join subscription_periods
        on subscription_periods.started_at < as_of_dates.as_of_date
{%- if is_incremental() %}
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

aggregated as (

    select
        customer_id,
        as_of_date,
        -- the current period is the one that started last before as_of_date
        {{ arg_max('plan', ['started_at', 'subscription_id']) }} as plan,
        {{ arg_max('contract_type', ['started_at', 'subscription_id']) }} as contract_type,
        {{ arg_max('monthly_price', ['started_at', 'subscription_id']) }} as monthly_price,
        {{ arg_max('monthly_price', ['started_at', 'subscription_id'], filter="
            started_at < as_of_date - interval '90 day'
            and (ended_at is null or ended_at >= as_of_date - interval '90 day')
        ") }} as monthly_price_90d_ago,
        count(*) filter (
            where end_reason = 'plan_change'
            and ended_at >= as_of_date - interval '365 day'
            and ended_at < as_of_date
        ) as plan_changes_365d,
        count(*) filter (
            where is_downgrade
            and ended_at >= as_of_date - interval '90 day'
            and ended_at < as_of_date
        ) as downgrades_90d,
        bool_or(ended_at is null or ended_at >= as_of_date) as is_active,
        min(started_at) as first_subscription_at
    from periods_started_before
    group by customer_id, as_of_date

),

final as (

    select
        -- ids
        customer_id,
        as_of_date,
        -- attributes
        plan,
        contract_type,
        -- numerics
        cast(as_of_date - cast(first_subscription_at as date) as integer) as tenure_days,
        monthly_price,
        monthly_price - coalesce(monthly_price_90d_ago, monthly_price) as price_change_90d,
        cast(plan_changes_365d as integer) as plan_changes_365d,
        cast(downgrades_90d as integer) as downgrades_90d,
        -- fixed-term contracts renew every 12 / 24 months of tenure, when leaving is cheap;
        -- null for month-to-month, which can leave any month
        case contract_type when 'one-year' then 12 when 'two-year' then 24 end
            - cast({{ dbt.datediff('first_subscription_at', 'as_of_date', 'month') }} as bigint)
            % case contract_type when 'one-year' then 12 when 'two-year' then 24 end
            as months_to_renewal,
        -- timestamps
        first_subscription_at
    from aggregated
    where is_active

)

select * from final
