-- The persons this run recomputes at every as-of date: their fingerprint
-- (int_change_customer_fingerprints) differs from the last complete build, they are new or gone
-- (a merge or split of identities retires or creates a customer_id), or a run that did not
-- complete left them pending. identity_changed: the records that form the person changed, so
-- their daily activity is recomputed too.
{{ config(post_hook="{{ record_pending_scope('pending_customers') }}") }}

with

current_persons as (

    select * from {{ ref('int_change_customer_fingerprints') }}

),

previous_persons as (

    {{ previous_state('customer_fingerprints', 'select * from current_persons where false') }}

),

pending as (

    {{ previous_state('pending_customers', 'select
        cast(null as ' ~ text_type() ~ ') as customer_id,
        cast(null as boolean) as identity_changed
    where false') }}

),

changed as (

    select
        coalesce(current_persons.customer_id, previous_persons.customer_id) as customer_id,
        current_persons.identity_checksum is distinct from previous_persons.identity_checksum
            as identity_changed
    from current_persons
    full outer join previous_persons
        on current_persons.customer_id = previous_persons.customer_id
    where current_persons.identity_checksum is distinct from previous_persons.identity_checksum
        or current_persons.facts_checksum is distinct from previous_persons.facts_checksum

    union all

    select customer_id, identity_changed from pending

),

final as (

    select
        customer_id,
        bool_or(identity_changed) as identity_changed
    from changed
    group by customer_id

)

select * from final
