-- One row per valid outbound contact, attributed to the resolved customer. The contact policy
-- counts these against the frequency caps.
with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        contacts.contact_id,
        identity_map.customer_id,
        -- attributes
        contacts.channel,
        contacts.purpose,
        -- timestamps
        contacts.contacted_at
    from contacts
    inner join identity_map
        on contacts.customer_record_id = identity_map.customer_record_id

)

select * from final
