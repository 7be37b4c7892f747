-- One row per resolved person: a checksum of the records that form the person (identity) and
-- one of everything else the as-of models read about the person: the profile (customers), the
-- subscription periods, orders and support tickets. Events are fingerprinted per day instead
-- (int_change_event_days): they are the bulk and arrive by day.
with

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

customers as (

    select * from {{ ref('customers') }}

),

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

orders as (

    select * from {{ ref('orders') }}

),

tickets as (

    select
        identity_map.customer_id,
        support_tickets.*
    from {{ ref('stg_crm__support_tickets') }} as support_tickets
    inner join identity_map
        on support_tickets.customer_record_id = identity_map.customer_record_id

),

identity_checksums as (

    select
        customer_id,
        {{ checksum_agg(['customer_record_id']) }} as checksum
    from identity_map
    group by customer_id

),

profile_checksums as (

    select
        customer_id,
        {{ checksum_agg(columns_of(ref('customers'))) }} as checksum
    from customers
    group by customer_id

),

subscription_checksums as (

    select
        customer_id,
        {{ checksum_agg(columns_of(ref('int_subscription_periods'))) }} as checksum
    from subscription_periods
    group by customer_id

),

order_checksums as (

    select
        customer_id,
        {{ checksum_agg(columns_of(ref('orders'))) }} as checksum
    from orders
    group by customer_id

),

ticket_checksums as (

    select
        customer_id,
        {{ checksum_agg(columns_of(ref('stg_crm__support_tickets'))) }} as checksum
    from tickets
    group by customer_id

),

final as (

    select
        -- keys
        identity_checksums.customer_id,
        -- fingerprints
        identity_checksums.checksum as identity_checksum,
        {{ row_checksum([
            'profile_checksums.checksum',
            'subscription_checksums.checksum',
            'order_checksums.checksum',
            'ticket_checksums.checksum'
        ]) }} as facts_checksum
    from identity_checksums
    left join profile_checksums
        on identity_checksums.customer_id = profile_checksums.customer_id
    left join subscription_checksums
        on identity_checksums.customer_id = subscription_checksums.customer_id
    left join order_checksums
        on identity_checksums.customer_id = order_checksums.customer_id
    left join ticket_checksums
        on identity_checksums.customer_id = ticket_checksums.customer_id

)

select * from final
