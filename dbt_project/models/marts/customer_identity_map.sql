-- One row per kept customer record: the customer (person) it belongs to.
with

records as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        customer_record_id,
        customer_id,
        matched_by
    from records

)

select * from final
