-- One row per subscription period, attributed to the resolved customer.
with

subscriptions as (

    select * from {{ ref('stg_crm__subscriptions') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

final as (

    select
        -- ids
        subscriptions.subscription_id,
        identity_map.customer_id,
        subscriptions.customer_record_id,
        -- attributes
        subscriptions.plan,
        subscriptions.contract_type,
        subscriptions.end_reason,
        -- a plan change to a cheaper period: the price of the next period is lower
        coalesce(
            subscriptions.end_reason = 'plan_change'
            and lead(subscriptions.monthly_price) over (
                partition by identity_map.customer_id
                order by subscriptions.started_at, subscriptions.subscription_id
            ) < subscriptions.monthly_price,
            false
        ) as is_downgrade,
        -- numerics
        subscriptions.monthly_price,
        row_number() over (
            partition by identity_map.customer_id
            order by subscriptions.started_at, subscriptions.subscription_id
        ) as period_number,
        -- timestamps
        subscriptions.started_at,
        subscriptions.ended_at
    from subscriptions
    inner join identity_map
        on subscriptions.customer_record_id = identity_map.customer_record_id

)

select * from final
