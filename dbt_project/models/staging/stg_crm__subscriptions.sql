-- The kept rows of raw.subscriptions: standardised, no duplicates, no future-dated or invalid rows
-- (those are listed with their reason in int_rejected_rows).
with

base as (

    select * from {{ ref('base_crm__subscriptions') }}

),

final as (

    select {{ star_except(ref('base_crm__subscriptions'), ['rejection_reason']) }}
    from base
    where rejection_reason is null

)

select * from final
