-- One row per day of raw events (by occurred_at): how many rows and an order-free checksum of
-- them (macro raw_event_checksum_columns). Compared with state.event_days (the last complete
-- build) in int_incremental_changed_days.
with

events as (

    select * from {{ source('raw', 'events') }}

),

final as (

    select
        -- keys
        cast(occurred_at as date) as activity_date,
        -- fingerprint
        count(*) as row_count,
        {{ checksum_agg(raw_event_checksum_columns()) }} as checksum
    from events
    group by cast(occurred_at as date)

)

select * from final
