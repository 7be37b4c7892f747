{#- SQL that differs between the adapters this project runs on: DuckDB (the laptop, the default) and
    PostgreSQL (a shared server) and Apache Spark (a cluster). Each macro dispatches
    (adapter.dispatch) to `duckdb__`, `postgres__` and `spark__`; `default__` is portable SQL where there is one, else a compile error that names
    the macro a new adapter must supply (silently borrowing another dialect could change results,
    e.g. hashes). The DuckDB forms are the SQL the project used before it ran anywhere else, so a
    DuckDB build gives the same tables. What no macro hides is listed in docs/postgres.md
    and docs/spark.md. -#}

{% macro dialect_missing(macro_name) -%}
    {{ exceptions.raise_compiler_error(
        macro_name ~ ": no implementation for adapter '" ~ adapter.type() ~ "'; add a macro "
        ~ adapter.type() ~ "__" ~ macro_name ~ " (see macros/dialect.sql)"
    ) }}
{%- endmacro %}


{% macro pii_salt() -%}
    {{ return(adapter.dispatch('pii_salt', 'crm_signals')()) }}
{%- endmacro %}

{% macro default__pii_salt() -%}
    {#- The salt must come from the session, never from SQL text: no portable way. -#}
    {{ dialect_missing('pii_salt') }}
{%- endmacro %}

{% macro duckdb__pii_salt() -%}
    {#- Bound per session by the dbt-duckdb plugin ml.core.dbt_salt_plugin. -#}
    coalesce(getvariable('pii_salt'), error('the PII salt is not set (ml.core.dbt_salt_plugin)'))
{%- endmacro %}

{% macro postgres__pii_salt() -%}
    {#- A custom setting given to every session by libpq: PGOPTIONS='-c crm.pii_salt=...'.
        Without it PostgreSQL fails with `unrecognized configuration parameter "crm.pii_salt"`
        rather than hashing without a salt. -#}
    current_setting('crm.pii_salt')
{%- endmacro %}

{% macro spark__pii_salt() -%}
    {#- Spark substitutes ${env:NAME} with the driver's environment variable before it parses the
        statement, so the salt is in no SQL text dbt writes or logs. Unset (substituted empty or
        left as it is) or shorter than a salt may be: the query fails instead of hashing without
        a salt. -#}
    (case
        when length('${env:CRM_PII_SALT}') >= 16 and '${env:CRM_PII_SALT}' not like '$%'
            then '${env:CRM_PII_SALT}'
        else raise_error('the PII salt is not set: CRM_PII_SALT in the Spark driver environment')
    end)
{%- endmacro %}


{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'crm_signals')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    {{ dialect_missing('sha256_hex') }}
{%- endmacro %}

{% macro duckdb__sha256_hex(expression) -%}
    {#- DuckDB's sha256 hashes the UTF-8 bytes and returns lower-case hex. -#}
    sha256({{ expression }})
{%- endmacro %}

{% macro postgres__sha256_hex(expression) -%}
    {#- The same digest as DuckDB: SHA-256 of the UTF-8 bytes, lower-case hex. -#}
    encode(sha256(convert_to({{ expression }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro spark__sha256_hex(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}


{% macro regexp_full_match(expression, pattern) -%}
    {#- True when the whole of `expression` matches `pattern` (a regex without quotes). -#}
    {{ return(adapter.dispatch('regexp_full_match', 'crm_signals')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(expression, pattern) -%}
    {{ dialect_missing('regexp_full_match') }}
{%- endmacro %}

{% macro postgres__regexp_full_match(expression, pattern) -%}
    ({{ expression }}) ~ '^(?:{{ pattern }})$'
{%- endmacro %}

{% macro duckdb__regexp_full_match(expression, pattern) -%}
    regexp_full_match({{ expression }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regexp_full_match(expression, pattern) -%}
    {#- Java regex. A backslash in a Spark string literal escapes the next character, so the
        pattern's backslashes are doubled to reach the regex engine as written. -#}
    (({{ expression }}) rlike '^(?:{{ pattern | replace('\\', '\\\\') }})$')
{%- endmacro %}


{% macro strip_accents(expression) -%}
    {{ return(adapter.dispatch('strip_accents', 'crm_signals')(expression)) }}
{%- endmacro %}

{% macro default__strip_accents(expression) -%}
    {{ dialect_missing('strip_accents') }}
{%- endmacro %}

{% macro duckdb__strip_accents(expression) -%}
    strip_accents({{ expression }})
{%- endmacro %}

{% macro postgres__strip_accents(expression) -%}
    {#- What DuckDB's strip_accents does, without the unaccent extension: decompose, drop the
        combining marks, compose again (so scripts without accents, e.g. Hangul, come back as they
        were). Needs a UTF8 database. -#}
    normalize(
        regexp_replace(
            normalize({{ expression }}, NFD),
            '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]', '', 'g'
        ),
        NFC
    )
{%- endmacro %}

{% macro spark__strip_accents(expression) -%}
    {#- Spark has no Unicode normalisation in SQL: precomposed Latin letters (Latin-1, Latin
        Extended-A/B, Latin Extended Additional: 497 letters, generated with Python's
        unicodedata NFD) are translated to their base letter, then combining marks left in
        decomposed text are removed. Accented letters of other scripts (e.g. Greek tonos) keep
        their accent here, unlike DuckDB's strip_accents (docs/spark.md). -#}
    regexp_replace(
        translate({{ expression }}, 'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǢǣǦǧǨǩǪǫǬǭǮǯǰǴǵǸǹǺǻǼǽǾǿȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ', 'AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaCcCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZzOoUuAaIiOoUuUuUuUuUuAaAaÆæGgKkOoOoƷʒjGgNnAaÆæØøAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYyAaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNnNnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZzhtwyſAaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEeEeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy'),
        '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]', ''
    )
{%- endmacro %}


{% macro arg_max(value, order_by, filter=none) -%}
    {#- Aggregate: `value` of the row with the greatest `order_by` (a list of columns; several
        break ties in order), over the rows that pass `filter`. As DuckDB's arg_max: rows with a
        null `value` are skipped; with one order column, so are rows where it is null; with
        several, a null column sorts above every value. -#}
    {{ return(adapter.dispatch('arg_max', 'crm_signals')(value, order_by, filter)) }}
{%- endmacro %}

{% macro default__arg_max(value, order_by, filter) -%}
    {{ dialect_missing('arg_max') }}
{%- endmacro %}

{% macro postgres__arg_max(value, order_by, filter) -%}
    {%- set conditions = [value ~ ' is not null'] -%}
    {%- if order_by | length == 1 -%}
        {%- do conditions.append(order_by[0] ~ ' is not null') -%}
    {%- endif -%}
    {%- if filter is not none -%}
        {%- do conditions.append('(' ~ filter ~ ')') -%}
    {%- endif -%}
    (array_agg({{ value }} order by {{ order_by | join(' desc nulls first, ') }} desc nulls first)
        filter (where {{ conditions | join(' and ') }}))[1]
{%- endmacro %}

{% macro duckdb__arg_max(value, order_by, filter) -%}
    {#- Several order columns compare as one struct (a null field sorts above every value). -#}
    {%- set key = order_by[0] if order_by | length == 1 else '(' ~ order_by | join(', ') ~ ')' -%}
    arg_max({{ value }}, {{ key }}){% if filter is not none %} filter (where {{ filter }}){% endif %}
{%- endmacro %}

{% macro spark__arg_max(value, order_by, filter) -%}
    {#- max_by over a struct key; `isnull` fields first make a null column sort above every
        value (Spark orders nulls lowest), as on DuckDB. -#}
    {%- set conditions = ['(' ~ value ~ ') is not null'] -%}
    {%- if order_by | length == 1 -%}
        {%- do conditions.append('(' ~ order_by[0] ~ ') is not null') -%}
        {%- set key = order_by[0] -%}
    {%- else -%}
        {%- set fields = [] -%}
        {%- for column in order_by -%}
            {%- do fields.append("'n" ~ loop.index ~ "', " ~ column ~ " is null") -%}
            {%- do fields.append("'v" ~ loop.index ~ "', " ~ column) -%}
        {%- endfor -%}
        {%- set key = 'named_struct(' ~ fields | join(', ') ~ ')' -%}
    {%- endif -%}
    {%- if filter is not none -%}
        {%- do conditions.append('(' ~ filter ~ ')') -%}
    {%- endif -%}
    max_by({{ value }}, {{ key }}) filter (where {{ conditions | join(' and ') }})
{%- endmacro %}


{% macro star_except(relation, except) -%}
    {#- The select list of every column of `relation` except the `except` list, in order. -#}
    {{ return(adapter.dispatch('star_except', 'crm_signals')(relation, except)) }}
{%- endmacro %}

{% macro default__star_except(relation, except) -%}
    {%- if not execute -%}
        *
    {%- else -%}
        {%- set excluded = except | map('lower') | list -%}
        {%- set kept = [] -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- if column.name | lower not in excluded -%}
                {%- do kept.append(adapter.quote(column.name)) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if kept | length == 0 -%}
            {{ exceptions.raise_compiler_error("star_except: no columns left in " ~ relation) }}
        {%- endif -%}
        {{ kept | join(', ') }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__star_except(relation, except) -%}
    * exclude ({{ except | join(', ') }})
{%- endmacro %}


{% macro last_before(grid, events, key, grid_time, event_time, as_name) -%}
    {#- A query: per row of `grid` (key, grid_time), the latest `event_time` of `events` with the
        same key strictly before grid_time, as `as_name`; grid rows without one are left out. -#}
    {{ return(adapter.dispatch('last_before', 'crm_signals')(
        grid, events, key, grid_time, event_time, as_name
    )) }}
{%- endmacro %}

{% macro default__last_before(grid, events, key, grid_time, event_time, as_name) -%}
    select
        {{ grid }}.{{ key }},
        {{ grid }}.{{ grid_time }},
        max({{ events }}.{{ event_time }}) as {{ as_name }}
    from {{ grid }}
    inner join {{ events }}
        on {{ grid }}.{{ key }} = {{ events }}.{{ key }}
        and {{ grid }}.{{ grid_time }} > {{ events }}.{{ event_time }}
    group by {{ grid }}.{{ key }}, {{ grid }}.{{ grid_time }}
{%- endmacro %}

{% macro duckdb__last_before(grid, events, key, grid_time, event_time, as_name) -%}
    {#- An as-of join: one probe per grid row instead of a range join. -#}
    select
        {{ grid }}.{{ key }},
        {{ grid }}.{{ grid_time }},
        {{ events }}.{{ event_time }} as {{ as_name }}
    from {{ grid }}
    asof inner join {{ events }}
        on {{ grid }}.{{ key }} = {{ events }}.{{ key }}
        and {{ grid }}.{{ grid_time }} > {{ events }}.{{ event_time }}
{%- endmacro %}


{% macro month_series(first_month, last_month) -%}
    {#- A select-list expression with one row per month from `first_month` to `last_month`
        (both included), as dates. Spark cannot wrap a generator in a cast, so the cast is here. -#}
    {{ return(adapter.dispatch('month_series', 'crm_signals')(first_month, last_month)) }}
{%- endmacro %}

{% macro default__month_series(first_month, last_month) -%}
    {{ dialect_missing('month_series') }}
{%- endmacro %}

{% macro postgres__month_series(first_month, last_month) -%}
    cast(generate_series(
        cast({{ first_month }} as timestamp), cast({{ last_month }} as timestamp), interval '1 month'
    ) as date)
{%- endmacro %}

{% macro duckdb__month_series(first_month, last_month) -%}
    cast(unnest(generate_series({{ first_month }}, {{ last_month }}, interval 1 month)) as date)
{%- endmacro %}

{% macro spark__month_series(first_month, last_month) -%}
    explode(sequence(
        cast({{ first_month }} as date), cast({{ last_month }} as date), interval 1 month
    ))
{%- endmacro %}


{% macro day_series(first_day, last_day) -%}
    {#- A select-list expression with one row per day from `first_day` to `last_day` (both
        included), as dates. -#}
    {{ return(adapter.dispatch('day_series', 'crm_signals')(first_day, last_day)) }}
{%- endmacro %}

{% macro default__day_series(first_day, last_day) -%}
    {{ dialect_missing('day_series') }}
{%- endmacro %}

{% macro postgres__day_series(first_day, last_day) -%}
    cast(generate_series(
        cast({{ first_day }} as timestamp), cast({{ last_day }} as timestamp), interval '1 day'
    ) as date)
{%- endmacro %}

{% macro duckdb__day_series(first_day, last_day) -%}
    cast(unnest(generate_series({{ first_day }}, {{ last_day }}, interval 1 day)) as date)
{%- endmacro %}

{% macro spark__day_series(first_day, last_day) -%}
    explode(sequence(cast({{ first_day }} as date), cast({{ last_day }} as date), interval 1 day))
{%- endmacro %}



{% macro text_type() -%}
    {#- The type of a text column in a cast, e.g. cast(null as {{ text_type() }}). -#}
    {{ return(adapter.dispatch('text_type', 'crm_signals')()) }}
{%- endmacro %}

{% macro default__text_type() -%}
    {{ dbt.type_string() }}
{%- endmacro %}

{% macro duckdb__text_type() -%}
    varchar
{%- endmacro %}

{% macro postgres__text_type() -%}
    varchar
{%- endmacro %}

{% macro spark__text_type() -%}
    {#- Spark accepts varchar only with a length. -#}
    string
{%- endmacro %}


{% macro regexp_replace_all(expression, pattern, replacement) -%}
    {#- Every match of `pattern` (a regex without quotes) in `expression` replaced. -#}
    {{ return(adapter.dispatch('regexp_replace_all', 'crm_signals')(
        expression, pattern, replacement
    )) }}
{%- endmacro %}

{% macro default__regexp_replace_all(expression, pattern, replacement) -%}
    {#- DuckDB and PostgreSQL replace the first match unless given the 'g' flag. -#}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{% macro spark__regexp_replace_all(expression, pattern, replacement) -%}
    {#- Spark's regexp_replace replaces every match; its 4th argument is a start position.
        Backslashes doubled: see spark__regexp_full_match. -#}
    regexp_replace(
        {{ expression }}, '{{ pattern | replace('\\', '\\\\') }}', '{{ replacement }}'
    )
{%- endmacro %}


{% macro row_value(columns) -%}
    {#- One composite value of `columns` (a list), compared and ordered field by field. -#}
    {{ return(adapter.dispatch('row_value', 'crm_signals')(columns)) }}
{%- endmacro %}

{% macro default__row_value(columns) -%}
    row({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__row_value(columns) -%}
    struct({{ columns | join(', ') }})
{%- endmacro %}


{% macro materialized_cte() -%}
    {#- `with x as {{ materialized_cte() }} (...)`: compute a CTE read several times once. -#}
    {{ return(adapter.dispatch('materialized_cte', 'crm_signals')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
    materialized
{%- endmacro %}

{% macro spark__materialized_cte() -%}
    {#- Spark has no such hint; it may compute the CTE once per reader. -#}
{%- endmacro %}


{% macro double_type() -%}
    {#- The 8-byte float type in a cast. -#}
    {{ return(adapter.dispatch('double_type', 'crm_signals')()) }}
{%- endmacro %}

{% macro default__double_type() -%}
    double precision
{%- endmacro %}

{% macro spark__double_type() -%}
    double
{%- endmacro %}
