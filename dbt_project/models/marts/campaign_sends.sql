-- One row per customer in a randomised campaign test, attributed to the resolved customer, with
-- the as-of date whose features describe the customer just before the send (the first day of
-- the send's month: features use only data before it). Uplift models learn from the rows with
-- a known outcome.
with

campaigns as (

    select * from {{ ref('stg_crm__campaigns') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        campaigns.send_id,
        identity_map.customer_id,
        campaigns.campaign_id,
        -- attributes
        campaigns.campaign_type,
        campaigns.arm,
        campaigns.arm = 'treatment' as is_treated,
        -- numerics
        campaigns.outcome,
        -- timestamps
        campaigns.sent_at,
        cast(date_trunc('month', campaigns.sent_at) as date) as as_of_date
    from campaigns
    inner join identity_map
        on campaigns.customer_record_id = identity_map.customer_record_id

)

select * from final
