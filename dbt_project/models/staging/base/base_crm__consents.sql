-- Every raw consent change, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'consents') }}

),

standardized as (

    select
        trim(consent_id) as consent_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('channel') }} as channel,
        {{ normalize_category('status') }} as status,
        recorded_at
    from source

),

flagged as (

    select
        *,
        {{ row_value(['customer_record_id', 'channel', 'status', 'recorded_at']) }} as row_content,
        case
            when recorded_at > {{ max_valid_timestamp() }} then 'future_dated'
            when channel not in ('email', 'phone', 'sms', 'all') then 'unknown_channel'
            when status not in ('granted', 'withdrawn') then 'unknown_status'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'consent_id', "
        invalid_reason is not null,
        recorded_at desc nulls last,
        customer_record_id nulls last,
        channel nulls last,
        status nulls last
    ") }}

),

final as (

    select
        consent_id,
        customer_record_id,
        channel,
        status,
        recorded_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
