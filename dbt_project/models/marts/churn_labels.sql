-- One row per customer per as_of_date, the keys of customer_features. churned: the customer's
-- final cancellation (customers.churned_at) falls in [as_of_date, as_of_date + horizon_days).
-- horizon_days: the var churn_horizon_days, the one definition of the window; Python reads it
-- from here (ml.data.features.read_churn_horizon_days). churned_at: that cancellation when it is
-- on or after as_of_date, even beyond the horizon; null otherwise. label_available: the whole
-- window is observed.
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='labels_' ~ var('churn_horizon_days'),
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies(labels=true) }}
with

customers_active as (

    select * from {{ ref('int_as_of_customers_active') }}
{%- if is_incremental() %}
    where {{ incremental_scope('labels_' ~ var('churn_horizon_days')) }}
{%- endif %}

),

customers as (

    select * from {{ ref('customers') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

final as (

    select
        -- keys
        customers_active.customer_id,
        customers_active.as_of_date,
        -- label
        coalesce(
            customers.churned_at >= customers_active.as_of_date
            and customers.churned_at
                < customers_active.as_of_date + interval '{{ var('churn_horizon_days') }} day',
            false
        ) as churned,
        cast({{ var('churn_horizon_days') }} as integer) as horizon_days,
        case
            when customers.churned_at >= customers_active.as_of_date then customers.churned_at
        end as churned_at,
        as_of_dates.label_available
    from customers_active
    inner join customers
        on customers_active.customer_id = customers.customer_id
    inner join as_of_dates
        on customers_active.as_of_date = as_of_dates.as_of_date

)

select * from final
