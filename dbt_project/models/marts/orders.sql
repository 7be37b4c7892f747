-- One row per valid order, attributed to the resolved customer.
with

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        orders.order_id,
        identity_map.customer_id,
        orders.customer_record_id,
        -- attributes
        orders.product_category,
        orders.status,
        -- numerics
        orders.amount,
        -- timestamps
        orders.ordered_at
    from orders
    inner join identity_map
        on orders.customer_record_id = identity_map.customer_record_id

)

select * from final
