-- Every raw contact-log row, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'contacts') }}

),

standardized as (

    select
        trim(contact_id) as contact_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('channel') }} as channel,
        {{ normalize_category('purpose') }} as purpose,
        contacted_at
    from source

),

flagged as (

    select
        *,
        {{ row_value(['customer_record_id', 'channel', 'purpose', 'contacted_at']) }} as row_content,
        case
            when contacted_at > {{ max_valid_timestamp() }} then 'future_dated'
            when channel not in ('email', 'phone', 'sms') then 'unknown_channel'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'contact_id', "
        invalid_reason is not null,
        contacted_at desc nulls last,
        customer_record_id nulls last,
        channel nulls last,
        purpose nulls last
    ") }}

),

final as (

    select
        contact_id,
        customer_record_id,
        channel,
        purpose,
        contacted_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
