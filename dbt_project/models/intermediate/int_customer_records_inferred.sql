-- One row per customer record known only from its orders, when the source holds no customer
-- records at all (a transaction log: orders and nothing else). Such a record is a customer of its
-- own, signed up at its first order; identity resolution has nothing to match it on. When the
-- source has customer records, an order of an unknown record stays rejected
-- (unknown_customer_record in int_rejected_rows): then it is more likely a broken export.
with

base_customers as (

    select * from {{ ref('base_crm__customers') }}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

final as (

    select
        -- ids
        customer_record_id,
        -- timestamps
        min(ordered_at) as signed_up_at
    from orders
    where not exists (select 1 from base_customers)
    group by customer_record_id

)

select * from final
