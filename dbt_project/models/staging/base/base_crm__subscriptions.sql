-- Every raw subscription period, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'subscriptions') }}

),

standardized as (

    select
        trim(subscription_id) as subscription_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('plan') }} as plan,
        -- Contract types keep their hyphens: month-to-month, one-year, two-year.
        nullif({{ regexp_replace_all('lower(trim(contract_type))', '[\\s_]+', '-') }}, '')
            as contract_type,
        monthly_price,
        started_at,
        -- An end after the valid horizon is not known yet: the period counts as running.
        case when ended_at <= {{ max_valid_timestamp() }} then ended_at end as ended_at,
        case
            when ended_at <= {{ max_valid_timestamp() }} then {{ normalize_category('end_reason') }}
        end as end_reason
    from source

),

flagged as (

    select
        *,
        {{ row_value([
            'customer_record_id',
            'plan',
            'contract_type',
            'monthly_price',
            'started_at',
            'ended_at',
            'end_reason'
        ]) }} as row_content,
        case
            when started_at > {{ max_valid_timestamp() }} then 'future_dated'
            when ended_at < started_at then 'ends_before_start'
            when monthly_price < 0 then 'negative_price'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'subscription_id', "
        invalid_reason is not null,
        started_at desc nulls last,
        ended_at desc nulls first,
        customer_record_id nulls last,
        plan nulls last,
        contract_type nulls last,
        monthly_price nulls last,
        end_reason nulls last
    ") }}

),

final as (

    select
        subscription_id,
        customer_record_id,
        plan,
        contract_type,
        monthly_price,
        started_at,
        ended_at,
        end_reason,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
