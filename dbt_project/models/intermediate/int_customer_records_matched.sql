-- Identity resolution: which customer records belong to one person.
--   1. Records with the same normalised e-mail are one person.
--   2. A record without e-mail joins the person of an e-mail record with the same normalised
--      phone (the smallest such person if several share the phone). Failing that, records
--      without e-mail that share a phone are one person.
--   3. Otherwise the record is a person on its own.
-- Records that carry different e-mails are never merged by phone (households share phones).
-- customer_id = 'C-' || the smallest customer_record_id (string order) of the person, so it is
-- stable while records are added to a person, and cannot be confused with a record id.
with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

email_persons as (

    select
        email,
        min(customer_record_id) as person_key
    from customers
    where email is not null
    group by email

),

email_person_by_phone as (

    select
        customers.phone,
        min(email_persons.person_key) as person_key
    from customers
    inner join email_persons
        on customers.email = email_persons.email
    where customers.phone is not null
    group by customers.phone

),

phone_only_persons as (

    select
        phone,
        min(customer_record_id) as person_key
    from customers
    where email is null and phone is not null
    group by phone

),

assigned as (

    select
        customers.customer_record_id,
        customers.email is not null as has_email,
        coalesce(
            email_persons.person_key,
            email_person_by_phone.person_key,
            phone_only_persons.person_key,
            customers.customer_record_id
        ) as person_key
    from customers
    left join email_persons
        on customers.email = email_persons.email
    left join email_person_by_phone
        on customers.email is null
        and customers.phone = email_person_by_phone.phone
    left join phone_only_persons
        on customers.email is null
        and customers.phone = phone_only_persons.phone

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
        -- attributes (PII stops here: nothing downstream selects email or phone)
        customers.email,
        customers.phone,
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
