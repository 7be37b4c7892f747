-- One row per active customer, as_of_date and product category the customer has not bought
-- before the as_of_date (the candidates of a cross-sell offer). purchased_within_90d: a completed
-- order of that category in [as_of_date, as_of_date + 90 days). label_available: that window is
-- observed. Refunded orders are not purchases. The purchase window is 90 days, as the column name
-- and the offer reasons say; it is not the churn horizon (var churn_horizon_days).
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='labels_90',
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies(labels=true) }}
with

customers_active as (

    select * from {{ ref('int_as_of_customers_active') }}
{%- if is_incremental() %}
    where {{ incremental_scope('labels_90') }}
{%- endif %}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

orders as (

    select * from {{ ref('orders') }}
    where status = 'completed' and amount > 0 and product_category is not null

),

categories as (

    select distinct product_category from orders

),

candidates as (

    select
        customers_active.customer_id,
        customers_active.as_of_date,
        categories.product_category
    from customers_active
    cross join categories

),

purchases as (

    select
        candidates.customer_id,
        candidates.as_of_date,
        candidates.product_category,
        count(*) filter (where orders.ordered_at < candidates.as_of_date) as orders_before,
        count(*) filter (
            where orders.ordered_at >= candidates.as_of_date
            and orders.ordered_at
                < candidates.as_of_date + interval '90 day'
        ) as orders_in_window
    from candidates
    left join orders
        on candidates.customer_id = orders.customer_id
        and candidates.product_category = orders.product_category
    group by candidates.customer_id, candidates.as_of_date, candidates.product_category

),

final as (

    select
        -- keys
        purchases.customer_id,
        purchases.as_of_date,
        purchases.product_category,
        -- label
        purchases.orders_in_window > 0 as purchased_within_90d,
        purchases.as_of_date + 90 <= as_of_dates.snapshot_date + 1 as label_available
    from purchases
    inner join as_of_dates
        on purchases.as_of_date = as_of_dates.as_of_date
    where purchases.orders_before = 0

)

select * from final
