-- The kept rows of raw.events: standardised, no duplicates, no future-dated or invalid rows
-- (those are listed with their reason in int_rejected_rows).
-- A daily build's unique test on event_id reads the days whose keys it re-ranked (macro
-- tested_rows_scope): a duplicate needs two kept copies of one key, and base_crm__events
-- re-ranks every copy of each key found on a changed day.
{{ config(unique_test_scope='event_keys') }}

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
