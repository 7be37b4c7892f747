-- Every raw customer record, standardised, with the reason it is rejected (null when kept).
-- Personal data stops here: the normalised e-mail and phone leave as salted hashes (identity
-- resolution matches on them) and the name is not selected at all.
with

source as (

    select * from {{ source('raw', 'customers') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

country_calling_codes as (

    select * from {{ ref('country_calling_codes') }}

),

cleaned as (

    select
        trim(customer_record_id) as customer_record_id,
        {{ normalize_email('email') }} as email,
        nullif(trim(phone), '') as phone_raw,
        {{ country_alias_key('country') }} as country_key,
        birth_year,
        -- The common one-letter and spelled-out forms of the two most frequent values are
        -- unified; any other value is kept as recorded (lower case) for the fairness audit.
        case
            when {{ normalize_category('gender') }} in ('f', 'female', 'w', 'woman') then 'female'
            when {{ normalize_category('gender') }} in ('m', 'male', 'man') then 'male'
            else {{ normalize_category('gender') }}
        end as gender,
        {{ normalize_category('acquisition_channel') }} as acquisition_channel,
        signed_up_at
    from source

),

with_country as (

    select
        cleaned.*,
        country_aliases.iso2 as country_code,
        country_calling_codes.calling_code,
        nullif(country_calling_codes.trunk_prefix, '') as trunk_prefix
    from cleaned
    left join country_aliases
        on cleaned.country_key = country_aliases.alias
    left join country_calling_codes
        on country_aliases.iso2 = country_calling_codes.iso2

),

phone_parts as (

    select
        *,
        -- "+49 (0)30 ..." writes the trunk 0 in brackets next to the country code: drop it.
        ltrim(phone_raw) like '+%' as phone_has_plus,
        {{ regexp_replace_all("replace(phone_raw, '(0)', '')", '[^0-9]', '') }} as phone_digits
    from with_country

),

phone_normalized as (

    -- E.164-like: '+' then country code then national number, digits only.
    --   "+49 30 1234567" -> +49301234567           (already international)
    --   "004930 1234567" -> +49301234567           (00 international call prefix)
    --   "030-1234567", "(030) 1234567" with country DE -> +49301234567
    --                    (national: trunk prefix 0 dropped, calling code of the record's country)
    -- A national number whose country is unknown, or a result outside 8-15 digits, is null.
    select
        *,
        case
            when phone_has_plus then phone_digits
            when phone_digits like '00%' then substr(phone_digits, 3)
            when calling_code is not null
                then calling_code || case
                    when trunk_prefix is not null
                        and substr(phone_digits, 1, length(trunk_prefix)) = trunk_prefix
                        then substr(phone_digits, length(trunk_prefix) + 1)
                    else phone_digits
                end
        end as phone_international_digits
    from phone_parts

),

standardized as (

    select
        customer_record_id,
        {{ keyed_hash('email') }} as email_hash,
        {{ keyed_hash(
            "case when length(phone_international_digits) between 8 and 15
                then '+' || phone_international_digits end"
        ) }} as phone_hash,
        country_code,
        birth_year,
        gender,
        acquisition_channel,
        signed_up_at
    from phone_normalized

),

flagged as (

    select
        *,
        {{ row_value([
            'email_hash',
            'phone_hash',
            'country_code',
            'birth_year',
            'gender',
            'acquisition_channel',
            'signed_up_at'
        ]) }} as row_content,
        case
            when signed_up_at > {{ max_valid_timestamp() }} then 'future_dated'
        end as invalid_reason
    from standardized

),

ranked as (

    {{ rank_within_key('flagged', 'customer_record_id', "
        invalid_reason is not null,
        signed_up_at desc nulls last,
        email_hash nulls last,
        phone_hash nulls last,
        country_code nulls last,
        birth_year nulls last,
        gender nulls last,
        acquisition_channel nulls last
    ") }}

),

final as (

    select
        customer_record_id,
        email_hash,
        phone_hash,
        country_code,
        birth_year,
        gender,
        acquisition_channel,
        signed_up_at,
        case
            when is_exact_copy then 'exact_duplicate'
            when invalid_reason is not null then invalid_reason
            when key_rank > 1 then 'duplicate_key'
        end as rejection_reason
    from ranked

)

select * from final
