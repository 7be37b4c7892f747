-- One row per customer (resolved person). No names, e-mails or phones: PII stops at identity
-- resolution. birth_year and gender are kept for fairness audits only, never as features.
with

customers as (

    select * from {{ ref('int_customers_deduplicated') }}

),

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

subscription_lifecycle as (

    -- Churned: no period is running and the period that ended last was cancelled.
    select
        customer_id,
        min(started_at) as first_subscription_at,
        case
            when count(*) filter (where ended_at is null) = 0
                and {{ arg_max('end_reason', ['ended_at', 'subscription_id']) }} = 'cancelled'
                then max(ended_at)
        end as churned_at
    from subscription_periods
    group by customer_id

),

final as (

    select
        -- ids
        customers.customer_id,
        -- attributes
        customers.country_code,
        customers.acquisition_channel,
        customers.birth_year,
        customers.gender,
        -- numerics
        customers.record_count,
        -- timestamps
        customers.signed_up_at,
        subscription_lifecycle.first_subscription_at,
        subscription_lifecycle.churned_at
    from customers
    left join subscription_lifecycle
        on customers.customer_id = subscription_lifecycle.customer_id

)

select * from final
