-- Every raw order, standardised, with the reason it is rejected (null when kept).
with

source as (

    select * from {{ source('raw', 'orders') }}

),

standardized as (

    select
        trim(order_id) as order_id,
        trim(customer_record_id) as customer_record_id,
        {{ normalize_category('product_category') }} as product_category,
        {{ normalize_category('status') }} as status,
        amount,
        ordered_at
    from source

),

flagged as (

    select
        *,
        {{ row_value([
            'customer_record_id',
            'product_category',
            'status',
            'amount',
            'ordered_at'
        ]) }} as row_content,
        case
            when ordered_at > {{ max_valid_timestamp() }} then 'future_dated'
            -- Only refunds may be negative; a negative completed order is a data error.
            when status = 'completed' and amount < 0 then 'negative_completed_amount'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'order_id', "
        invalid_reason is not null,
        ordered_at desc nulls last,
        customer_record_id nulls last,
        product_category nulls last,
        status nulls last,
        amount nulls last
    ") }}

),

final as (

    select
        order_id,
        customer_record_id,
        product_category,
        status,
        amount,
        ordered_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
