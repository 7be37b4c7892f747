-- Identity resolution: which customer records belong to one person. E-mails and phones arrive
-- as salted hashes (base_crm__customers): equal normalised values have equal hashes.
--   1. Records with the same normalised e-mail are one person.
--   2. A record without e-mail joins the person of an e-mail record with the same normalised
--      phone (the smallest such person if several share the phone). Failing that, records
--      without e-mail that share a phone are one person.
--   3. Otherwise the record is a person on its own. So is a record known only from its orders
--      in a source without customer records (int_customer_records_inferred).
-- Records that carry different e-mails are never merged by phone (households share phones).
-- customer_id = 'C-' || the smallest customer_record_id (string order) of the person, so it is
-- stable while records are added to a person, and cannot be confused with a record id.
with

customer_records as (

    select * from {{ ref('stg_crm__customers') }}

),

inferred_records as (

    select * from {{ ref('int_customer_records_inferred') }}

),

customers as (

    select
        customer_record_id,
        email_hash,
        phone_hash,
        country_code,
        acquisition_channel,
        birth_year,
        gender,
        signed_up_at
    from customer_records

    union all

    select
        customer_record_id,
        cast(null as {{ text_type() }}) as email_hash,
        cast(null as {{ text_type() }}) as phone_hash,
        cast(null as {{ text_type() }}) as country_code,
        cast(null as {{ text_type() }}) as acquisition_channel,
        cast(null as integer) as birth_year,
        cast(null as {{ text_type() }}) as gender,
        signed_up_at
    from inferred_records

),

email_persons as (

    select
        email_hash,
        min(customer_record_id) as person_key
    from customers
    where email_hash is not null
    group by email_hash

),

email_person_by_phone as (

    select
        customers.phone_hash,
        min(email_persons.person_key) as person_key
    from customers
    inner join email_persons
        on customers.email_hash = email_persons.email_hash
    where customers.phone_hash is not null
    group by customers.phone_hash

),

phone_only_persons as (

    select
        phone_hash,
        min(customer_record_id) as person_key
    from customers
    where email_hash is null and phone_hash is not null
    group by phone_hash

),

assigned as (

    select
        customers.customer_record_id,
        customers.email_hash is not null as has_email,
        coalesce(
            email_persons.person_key,
            email_person_by_phone.person_key,
            phone_only_persons.person_key,
            customers.customer_record_id
        ) as person_key
    from customers
    left join email_persons
        on customers.email_hash = email_persons.email_hash
    left join email_person_by_phone
        on customers.email_hash is null
        and customers.phone_hash = email_person_by_phone.phone_hash
    left join phone_only_persons
        on customers.email_hash is null
        and customers.phone_hash = phone_only_persons.phone_hash

),

final as (

    select
        -- ids
        assigned.customer_record_id,
        'C-' || min(assigned.customer_record_id) over (partition by assigned.person_key)
            as customer_id,
        -- match evidence
        -- email: keyed by its e-mail; phone: a record without e-mail in a person of several
        -- records; none: a person of its own
        case
            when assigned.has_email then 'email'
            when count(*) over (partition by assigned.person_key) > 1 then 'phone'
            else 'none'
        end as matched_by,
        count(*) over (partition by assigned.person_key) as person_record_count,
        -- attributes (the identity keys stop here: nothing downstream selects the hashes)
        customers.email_hash,
        customers.phone_hash,
        customers.country_code,
        customers.acquisition_channel,
        customers.birth_year,
        customers.gender,
        -- timestamps
        customers.signed_up_at
    from assigned
    inner join customers
        on assigned.customer_record_id = customers.customer_record_id

)

select * from final
