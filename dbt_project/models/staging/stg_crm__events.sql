-- The kept rows of raw.events: standardised, no duplicates, no future-dated or invalid rows
-- (those are listed with their reason in int_rejected_rows).
with

base as (

    select * from {{ ref('base_crm__events') }}

),

final as (

    select {{ star_except(ref('base_crm__events'), ['rejection_reason']) }}
    from base
    where rejection_reason is null

)

select * from final
