-- Every raw campaign send, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'campaigns') }}

),

standardized as (

    select
        trim(send_id) as send_id,
        trim(customer_record_id) as customer_record_id,
        trim(campaign_id) as campaign_id,
        {{ normalize_category('campaign_type') }} as campaign_type,
        {{ normalize_category('arm') }} as arm,
        outcome,
        sent_at
    from source

),

flagged as (

    select
        *,
        {{ row_value([
            'customer_record_id',
            'campaign_id',
            'campaign_type',
            'arm',
            'outcome',
            'sent_at'
        ]) }} as row_content,
        case
            when sent_at > {{ max_valid_timestamp() }} then 'future_dated'
            when arm not in ('treatment', 'control') then 'unknown_arm'
            when outcome not in (0, 1) then 'outcome_not_0_or_1'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'send_id', "
        invalid_reason is not null,
        sent_at desc nulls last,
        customer_record_id nulls last,
        campaign_id nulls last,
        arm nulls last,
        outcome nulls last
    ") }}

),

final as (

    select
        send_id,
        customer_record_id,
        campaign_id,
        campaign_type,
        arm,
        outcome,
        sent_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
