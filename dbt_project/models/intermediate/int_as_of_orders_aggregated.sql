-- One row per active customer per as_of_date: orders before as_of_date. orders_90d counts
-- purchases (refunds excluded); order_value_90d is the net amount (refunds are negative).
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

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

customer_orders as (

    select
        identity_map.customer_id,
        orders.order_id,
        orders.status,
        orders.amount,
        orders.ordered_at
    from orders
    inner join identity_map
        on orders.customer_record_id = identity_map.customer_record_id

),

aggregated as (

    select
        customers_active.customer_id,
        customers_active.as_of_date,
        count(*) filter (
            where customer_orders.ordered_at >= customers_active.as_of_date - interval '90 day'
            and customer_orders.status is distinct from 'refunded'
        ) as orders_90d,
        -- an exact sum (to 6 decimals): a sum of doubles depends on the order rows arrive in,
        -- so an incremental run and a rebuild would differ in the last bits
        sum(cast(customer_orders.amount as decimal(38, 6))) filter (
            where customer_orders.ordered_at >= customers_active.as_of_date - interval '90 day'
        ) as order_value_90d,
        max(customer_orders.ordered_at) filter (
            where customer_orders.status is distinct from 'refunded'
        ) as last_ordered_at
    from customers_active
    inner join customer_orders
        on customers_active.customer_id = customer_orders.customer_id
        and customer_orders.ordered_at < customers_active.as_of_date
    group by customers_active.customer_id, customers_active.as_of_date

),

final as (

    select
        -- ids
        customers_active.customer_id,
        customers_active.as_of_date,
        -- numerics
        cast(coalesce(aggregated.orders_90d, 0) as integer) as orders_90d,
        cast(coalesce(aggregated.order_value_90d, 0) as {{ double_type() }}) as order_value_90d,
        cast(customers_active.as_of_date - cast(aggregated.last_ordered_at as date) as integer)
            as days_since_last_order
    from customers_active
    left join aggregated
        on customers_active.customer_id = aggregated.customer_id
        and customers_active.as_of_date = aggregated.as_of_date

)

select * from final
