-- Every raw event, standardised, with the reason it is rejected (null when kept).
-- Incremental: a run re-ranks every copy of each event id found on a changed day (the winner
-- among copies can change) and keeps the other rows.
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='events',
    scope_also=['event_id in (select event_id from __temp__)'],
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies() }}

with

source as (

    select * from {{ source('raw', 'events') }}
{%- if is_incremental() %}
    where trim(event_id) in (
        select trim(event_id)
        from {{ source('raw', 'events') }}
        where {{ incremental_scope('events') }}
        union
        select event_id from {{ this }} where {{ incremental_scope('events') }}
    )
{%- endif %}

),

standardized as (

    select
        trim(event_id) as event_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('event_type') }} as event_type,
        occurred_at
    from source

),

-- Materialized: the ranking reads it four times (keys seen once, repeated keys, both sides);
-- inlined, every read redid the standardisation (62 s against 36 s for 5M events).
flagged as {{ materialized_cte() }} (

    select
        *,
        {{ row_value(['customer_record_id', 'event_type', 'occurred_at']) }} as row_content,
        case
            when occurred_at > {{ max_valid_timestamp() }} then 'future_dated'
            when event_type not in (
                'login', 'email_open', 'email_click', 'pricing_page_visit', 'feature_use'
            ) then 'unknown_event_type'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'event_id', "
        invalid_reason is not null,
        occurred_at desc nulls last,
        customer_record_id nulls last,
        event_type nulls last
    ") }}

),

final as (

    select
        event_id,
        customer_record_id,
        event_type,
        occurred_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
