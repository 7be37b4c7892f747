-- One row per valid subscription period, attributed to the resolved customer.
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

final as (

    select * from subscription_periods

)

select * from final
