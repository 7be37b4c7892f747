-- One row per valid activity event, attributed to the resolved customer.
-- A view: nothing in the pipeline reads it (the feature models aggregate stg_crm__events through
-- int_customer_daily_activity), and as a table it copied every event on every build (129 s of
-- 453 at 100k customers); it stays for analysts and tests.
{{ config(materialized='view') }}

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
