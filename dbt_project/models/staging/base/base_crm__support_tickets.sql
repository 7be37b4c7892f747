-- Every raw support ticket, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'support_tickets') }}

),

standardized as (

    select
        trim(ticket_id) as ticket_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('category') }} as category,
        {{ normalize_category('priority') }} as priority,
        -- Ratings outside the 1-5 scale are treated as not given.
        case when satisfaction_score between 1 and 5 then satisfaction_score end
            as satisfaction_score,
        opened_at,
        -- A resolution after the valid horizon is not known yet: the ticket counts as open.
        case when resolved_at <= {{ max_valid_timestamp() }} then resolved_at end as resolved_at
    from source

),

flagged as (

    select
        *,
        {{ row_value([
            'customer_record_id',
            'category',
            'priority',
            'satisfaction_score',
            'opened_at',
            'resolved_at'
        ]) }} as row_content,
        case
            when opened_at > {{ max_valid_timestamp() }} then 'future_dated'
            when resolved_at < opened_at then 'resolved_before_opened'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'ticket_id', "
        invalid_reason is not null,
        opened_at desc nulls last,
        resolved_at desc nulls first,
        customer_record_id nulls last,
        category nulls last,
        priority nulls last,
        satisfaction_score nulls last
    ") }}

),

final as (

    select
        ticket_id,
        customer_record_id,
        category,
        priority,
        satisfaction_score,
        opened_at,
        resolved_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
