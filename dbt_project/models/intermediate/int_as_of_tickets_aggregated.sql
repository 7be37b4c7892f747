-- One row per active customer per as_of_date: support tickets before as_of_date.
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='replace_scope',
    scope='as_of',
    on_schema_change='fail',
) }}
-- depends_on: {{ scope_dependencies() }}
with

customers_active as (

    select * from {{ ref('int_as_of_customers_active') }}
{%- if is_incremental() %}
    where {{ incremental_scope('as_of') }}
{%- endif %}

),

tickets as (

    select * from {{ ref('stg_crm__support_tickets') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

customer_tickets as (

    select
        identity_map.customer_id,
        tickets.ticket_id,
        tickets.satisfaction_score,
        tickets.opened_at,
        tickets.resolved_at
    from tickets
    inner join identity_map
        on tickets.customer_record_id = identity_map.customer_record_id

),

aggregated as (

    -- Every ticket opened before as_of_date (tickets are few per customer). A resolution on or
    -- after as_of_date is only compared with as_of_date: the ticket was open then.
    select
        customers_active.customer_id,
        customers_active.as_of_date,
        count(*) filter (
            where customer_tickets.opened_at >= customers_active.as_of_date - interval '30 day'
        ) as tickets_30d,
        count(*) filter (
            where customer_tickets.opened_at >= customers_active.as_of_date - interval '90 day'
        ) as tickets_90d,
        count(*) filter (
            where customer_tickets.resolved_at is null
            or customer_tickets.resolved_at >= customers_active.as_of_date
        ) as open_tickets,
        avg(customer_tickets.satisfaction_score) filter (
            where customer_tickets.resolved_at >= customers_active.as_of_date - interval '90 day'
            and customer_tickets.resolved_at < customers_active.as_of_date
        ) as avg_satisfaction_90d
    from customers_active
    inner join customer_tickets
        on customers_active.customer_id = customer_tickets.customer_id
        and customer_tickets.opened_at < customers_active.as_of_date
    group by customers_active.customer_id, customers_active.as_of_date

),

final as (

    select
        -- ids
        customers_active.customer_id,
        customers_active.as_of_date,
        -- numerics
        cast(coalesce(aggregated.tickets_30d, 0) as integer) as tickets_30d,
        cast(coalesce(aggregated.tickets_90d, 0) as integer) as tickets_90d,
        cast(coalesce(aggregated.open_tickets, 0) as integer) as open_tickets,
        cast(aggregated.avg_satisfaction_90d as {{ double_type() }}) as avg_satisfaction_90d
    from customers_active
    left join aggregated
        on customers_active.customer_id = aggregated.customer_id
        and customers_active.as_of_date = aggregated.as_of_date

)

select * from final
