-- One row per valid activity event, attributed to the resolved customer.
with

events as (

    select * from {{ ref('stg_crm__events') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        events.event_id,
        identity_map.customer_id,
        events.customer_record_id,
        -- attributes
        events.event_type,
        -- timestamps
        events.occurred_at
    from events
    inner join identity_map
        on events.customer_record_id = identity_map.customer_record_id

)

select * from final
