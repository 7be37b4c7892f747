-- One row per raw row that staging or identity resolution dropped, with the reason, so a
-- person can see and count what was left out: exact_duplicate, duplicate_key, future_dated,
-- an invalid value (negative_completed_amount, ends_before_start, ...) or unknown_customer_record
-- (a row of a customer record that does not exist or was itself rejected).
with

base_customers as (

    select * from {{ ref('base_crm__customers') }}

),

base_subscriptions as (

    select * from {{ ref('base_crm__subscriptions') }}

),

base_orders as (

    select * from {{ ref('base_crm__orders') }}

),

base_events as (

    select * from {{ ref('base_crm__events') }}

),

base_support_tickets as (

    select * from {{ ref('base_crm__support_tickets') }}

),

base_consents as (

    select * from {{ ref('base_crm__consents') }}

),

base_contacts as (

    select * from {{ ref('base_crm__contacts') }}

),

base_campaigns as (

    select * from {{ ref('base_crm__campaigns') }}

),

stg_subscriptions as (

    select * from {{ ref('stg_crm__subscriptions') }}

),

stg_orders as (

    select * from {{ ref('stg_crm__orders') }}

),

stg_events as (

    select * from {{ ref('stg_crm__events') }}

),

stg_support_tickets as (

    select * from {{ ref('stg_crm__support_tickets') }}

),

stg_consents as (

    select * from {{ ref('stg_crm__consents') }}

),

stg_contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

stg_campaigns as (

    select * from {{ ref('stg_crm__campaigns') }}

),

identity_map as (

    select * from {{ ref('int_customer_records_matched') }}

),

rejected as (

    select
        'customers' as table_name,
        customer_record_id as record_key,
        customer_record_id,
        rejection_reason
    from base_customers
    where rejection_reason is not null

    union all

    select
        'subscriptions' as table_name,
        subscription_id as record_key,
        customer_record_id,
        rejection_reason
    from base_subscriptions
    where rejection_reason is not null

    union all

    select
        'orders' as table_name,
        order_id as record_key,
        customer_record_id,
        rejection_reason
    from base_orders
    where rejection_reason is not null

    union all

    select
        'events' as table_name,
        event_id as record_key,
        customer_record_id,
        rejection_reason
    from base_events
    where rejection_reason is not null

    union all

    select
        'support_tickets' as table_name,
        ticket_id as record_key,
        customer_record_id,
        rejection_reason
    from base_support_tickets
    where rejection_reason is not null

    union all

    select
        'consents' as table_name,
        consent_id as record_key,
        customer_record_id,
        rejection_reason
    from base_consents
    where rejection_reason is not null

    union all

    select
        'campaigns' as table_name,
        send_id as record_key,
        customer_record_id,
        rejection_reason
    from base_campaigns
    where rejection_reason is not null

    union all

    select
        'contacts' as table_name,
        contact_id as record_key,
        customer_record_id,
        rejection_reason
    from base_contacts
    where rejection_reason is not null

    union all

    select
        'subscriptions' as table_name,
        subscription_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_subscriptions
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'orders' as table_name,
        order_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_orders
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'events' as table_name,
        event_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_events
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'support_tickets' as table_name,
        ticket_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_support_tickets
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'consents' as table_name,
        consent_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_consents
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'campaigns' as table_name,
        send_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_campaigns
    where customer_record_id not in (select customer_record_id from identity_map)

    union all

    select
        'contacts' as table_name,
        contact_id as record_key,
        customer_record_id,
        'unknown_customer_record' as rejection_reason
    from stg_contacts
    where customer_record_id not in (select customer_record_id from identity_map)

),

final as (

    select
        -- ids: a duplicate repeats its key, so the row number makes the id unique
        table_name || ':' || record_key || ':' || rejection_reason || ':' || row_number() over (
            partition by table_name, record_key, rejection_reason order by record_key
        ) as rejected_row_id,
        table_name,
        record_key,
        -- the record the row belongs to, so an erasure can find its rejected rows too
        customer_record_id,
        -- attributes
        rejection_reason
    from rejected

)

select * from final
