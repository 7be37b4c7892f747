-- One row per person (customer_id). Each attribute comes from the most recently signed-up
-- record that has a value for it; signed_up_at is the earliest sign-up of any record.
with

records as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        customer_id,
        -- attributes; (signed_up_at, customer_record_id) breaks ties deterministically
        {{ arg_max(
            'country_code', ['signed_up_at', 'customer_record_id'],
            filter='country_code is not null'
        ) }} as country_code,
        {{ arg_max(
            'acquisition_channel', ['signed_up_at', 'customer_record_id'],
            filter='acquisition_channel is not null'
        ) }} as acquisition_channel,
        {{ arg_max(
            'birth_year', ['signed_up_at', 'customer_record_id'], filter='birth_year is not null'
        ) }} as birth_year,
        {{ arg_max(
            'gender', ['signed_up_at', 'customer_record_id'], filter='gender is not null'
        ) }} as gender,
        -- numerics
        count(*) as record_count,
        -- timestamps
        min(signed_up_at) as signed_up_at
    from records
    group by customer_id

)

select * from final
