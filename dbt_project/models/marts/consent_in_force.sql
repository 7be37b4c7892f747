-- One row per customer and channel: the consent choice in force, the latest one recorded.
-- Channel `all` withdrawn is a do-not-contact request. The contact policy reads this table.
with

consents as (

    select * from {{ ref('consents') }}

),

final as (

    select
        -- keys
        customer_id,
        channel,
        -- attributes
        {{ arg_max('status', ['recorded_at']) }} = 'granted' as granted,
        -- timestamps
        max(recorded_at) as recorded_at
    from consents
    group by customer_id, channel

)

select * from final
