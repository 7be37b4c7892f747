-- One row per active customer per as_of_date (see int_as_of_customers_active). Every feature
-- uses only data strictly before as_of_date. The columns after the keys are exactly
-- ml/data/features.py CATEGORICAL_FEATURES + NUMERIC_FEATURES, in that order.
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

customers as (

    select * from {{ ref('customers') }}

),

activity as (

    select * from {{ ref('int_as_of_activity_aggregated') }}
{%- if is_incremental() %}
    -- the scope of customers_active (below too): the joins read only rows they can match
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

tickets as (

    select * from {{ ref('int_as_of_tickets_aggregated') }}
{%- if is_incremental() %}
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

orders as (

    select * from {{ ref('int_as_of_orders_aggregated') }}
{%- if is_incremental() %}
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

final as (

    select
        -- keys
        customers_active.customer_id,
        customers_active.as_of_date,
        -- categorical features
        customers_active.plan,
        customers_active.contract_type,
        coalesce(customers.acquisition_channel, 'unknown') as acquisition_channel,
        coalesce(customers.country_code, 'unknown') as country_code,
        -- numeric features
        customers_active.tenure_days,
        customers_active.monthly_price,
        customers_active.price_change_90d,
        customers_active.plan_changes_365d,
        customers_active.downgrades_90d,
        customers_active.months_to_renewal,
        activity.logins_30d,
        activity.logins_31_60d,
        activity.login_trend,
        activity.days_since_last_login,
        activity.feature_uses_30d,
        activity.email_opens_30d,
        activity.email_clicks_30d,
        activity.pricing_page_visits_30d,
        tickets.tickets_30d,
        tickets.tickets_90d,
        tickets.open_tickets,
        tickets.avg_satisfaction_90d,
        orders.orders_90d,
        orders.order_value_90d,
        orders.days_since_last_order
    from customers_active
    inner join customers
        on customers_active.customer_id = customers.customer_id
    inner join activity
        on customers_active.customer_id = activity.customer_id
        and customers_active.as_of_date = activity.as_of_date
    inner join tickets
        on customers_active.customer_id = tickets.customer_id
        and customers_active.as_of_date = tickets.as_of_date
    inner join orders
        on customers_active.customer_id = orders.customer_id
        and customers_active.as_of_date = orders.as_of_date

)

select * from final
