-- One row per valid consent change, attributed to the resolved customer. The consent in force
-- for a channel is the latest change recorded; serving applies it last.
with

consents as (

    select * from {{ ref('stg_crm__consents') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        consents.consent_id,
        identity_map.customer_id,
        consents.customer_record_id,
        -- attributes
        consents.channel,
        consents.status,
        -- timestamps
        consents.recorded_at
    from consents
    inner join identity_map
        on consents.customer_record_id = identity_map.customer_record_id

)

select * from final
