-- One row per day of raw events (by occurred_at): how many rows and an order-free checksum of
-- them. The future-dated flag is part of the checksum: a day that stops being in the future has
-- changed. Compared with state.event_days (the last complete build) in
-- int_incremental_changed_days.
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
        {{ checksum_agg([
            'event_id', 'customer_record_id', 'event_type', 'occurred_at',
            'occurred_at > ' ~ max_valid_timestamp()
        ]) }} as checksum
    from events
    group by cast(occurred_at as date)

)

select * from final
