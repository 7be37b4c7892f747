{#- Standardisation rules shared by the staging models. Each returns one SQL expression. -#}

{% macro max_valid_timestamp() -%}
    {#- Rows dated after this are future-dated. `--vars '{max_valid_timestamp: ...}'` fixes it
        (tests, reproducible rebuilds); otherwise it is the run start in UTC. -#}
    {%- set value = var('max_valid_timestamp', none) -%}
    {%- if value is none or value | string | trim == '' -%}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
    {%- else -%}
        cast('{{ value }}' as timestamp)
    {%- endif -%}
{%- endmacro %}


{% macro normalize_email(column) -%}
    {#- E-mail addresses cannot contain white space, so all of it goes, then lower case (the
        domain is case-insensitive and CRMs treat the local part the same way). Anything that
        does not look like local@domain.tld is treated as missing rather than matched on. -#}
    case
        when {{ regexp_full_match(
            "lower(" ~ regexp_replace_all(column, '\\s+', '') ~ ")", '[^@]+@[^@]+\\.[^@]+'
        ) }}
            then lower({{ regexp_replace_all(column, '\\s+', '') }})
    end
{%- endmacro %}


{% macro country_alias_key(column) -%}
    {#- The lookup key of seeds/country_aliases.csv: lower case, accents stripped, dots removed
        ("U.S.A." -> "usa"), white space collapsed. -#}
    nullif(
        trim({{ regexp_replace_all(
            "lower(" ~ strip_accents("replace(" ~ column ~ ", '.', '')") ~ ")", '\\s+', ' '
        ) }}),
        ''
    )
{%- endmacro %}


{% macro normalize_category(column) -%}
    {#- Categorical codes: trimmed, lower case, inner spaces and hyphens as underscores. -#}
    nullif({{ regexp_replace_all('lower(trim(' ~ column ~ '))', '[\\s-]+', '_') }}, '')
{%- endmacro %}


{% macro keyed_hash(column) -%}
    {#- Salted SHA-256 of a personal identifier (null stays null), lower-case hex. The salt is a
        secret the session carries (macro pii_salt: on DuckDB the plugin ml.core.dbt_salt_plugin, on
        PostgreSQL PGOPTIONS), never written in SQL; a build without it fails here rather than
        matching everyone on a null key. On DuckDB the same expression as
        ml.core.privacy.keyed_hash_sql; every adapter gives the same hex for the same salt and value. -#}
    {{ sha256_hex(pii_salt() ~ ' || ' ~ column) }}
{%- endmacro %}


{% macro rank_within_key(rows, key, order_by) -%}
    {#- The de-duplication ranking of a base model: each row of `rows` with key_rank (1 = the row
        the key keeps) and is_exact_copy (equal in every column to the row ranked before it).
        `order_by` sorts the rows of one key: valid rows first, so a key keeps a valid row if it
        has one, then every column, so exact copies are neighbours. `rows` needs row_content.
        Almost every key has one row: only the keys seen more than once go through the window,
        which is most of the cost on large tables (the others are rank 1 and no copy). -#}
    {{ return(adapter.dispatch('rank_within_key', 'crm_signals')(rows, key, order_by)) }}
{%- endmacro %}

{% macro default__rank_within_key(rows, key, order_by) -%}
    {#- The same two parts in standard SQL: [not] exists for the anti and semi joins, a plain
        union all (both parts list the columns in the same order). -#}
    (
        select *, 1 as key_rank, false as is_exact_copy
        from {{ rows }}
        where not exists (
            select 1
            from (
                select {{ key }} from {{ rows }} group by {{ key }} having count(*) > 1
            ) as repeated_keys
            where repeated_keys.{{ key }} = {{ rows }}.{{ key }}
        )
    )
    union all
    (
        select
            *,
            row_number() over by_key as key_rank,
            coalesce(row_content is not distinct from lag(row_content) over by_key, false)
                as is_exact_copy
        from {{ rows }}
        where exists (
            select 1
            from (
                select {{ key }} from {{ rows }} group by {{ key }} having count(*) > 1
            ) as repeated_keys
            where repeated_keys.{{ key }} = {{ rows }}.{{ key }}
        )
        window by_key as (partition by {{ key }} order by {{ order_by }})
    )
{%- endmacro %}

{% macro duckdb__rank_within_key(rows, key, order_by) -%}
    {#- The repeated keys once (a group-by over every row), for both parts. -#}
    with repeated_keys as materialized (
        select {{ key }} from {{ rows }} group by {{ key }} having count(*) > 1
    )
    (
        select *, 1 as key_rank, false as is_exact_copy
        from {{ rows }}
        anti join repeated_keys using ({{ key }})
    )
    union all by name
    (
        select
            *,
            row_number() over by_key as key_rank,
            coalesce(row_content is not distinct from lag(row_content) over by_key, false)
                as is_exact_copy
        from {{ rows }}
        semi join repeated_keys using ({{ key }})
        window by_key as (partition by {{ key }} order by {{ order_by }})
    )
{%- endmacro %}
