{#- Incremental builds (docs/operations.md, "Incremental runs").

    The models keyed by time are incremental: a run recomputes only the rows its changes can
    reach and keeps the rest. What changed is found by comparing fingerprints of the inputs with
    the fingerprints of the last complete build (schema `state`):
      * events, per day of occurrence: rows and a checksum of the raw rows (the future-dated flag
        included, so a day that stops being in the future counts as changed). A changed day
        changes the daily activity of that day and every as-of date after it;
      * customers, per resolved person: a checksum of the identity records (which records form
        the person) and one of everything else the as-of models read about the person (profile,
        subscriptions, orders, tickets). A changed person is recomputed at every as-of date;
      * the build: the definition of the models and vars, the first subscription start (where
        the as-of grid begins), the product categories and the snapshot date. A change of any
        but the snapshot date recomputes everything; a new snapshot date recomputes the labels
        whose window it closes (int_incremental_label_scope).
    A row count and an XOR of 64-bit row hashes per group: adding, removing or editing rows
    changes one of them (two different row sets with equal counts and equal XOR would need a
    hash collision).
    `int_incremental_scope` holds the result. The scope of a run is written to state.pending_*
    as soon as it is known and kept until a build completes (commit_incremental_state), so a
    failed or killed run is redone by the next one whatever changed in between.

    An incremental model uses the strategy `replace_scope` (below) with config `scope` naming its
    predicate (macro incremental_scope) and must name the scope models it reads in a
    `-- depends_on:` line, because dbt does not see refs inside `is_incremental()` at parse time.
-#}

{% macro row_checksum(columns) -%}
    {{ return(adapter.dispatch('row_checksum', 'crm_signals')(columns)) }}
{%- endmacro %}

{% macro default__row_checksum(columns) -%}
    {{ dialect_missing('row_checksum') }}
{%- endmacro %}

{% macro duckdb__row_checksum(columns) -%}
    {#- A 64-bit hash of the values; nulls hash too, so (a, null) differs from (null, a). -#}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__row_checksum(columns) -%}
    {#- Spark's 64-bit xxHash; a null column is skipped, so (a, null) and (null, a) collide:
        only the change detection of incremental runs reads it, and Spark builds are full. -#}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}

{% macro postgres__row_checksum(columns) -%}
    ('x' || substr(md5(row({{ columns | join(', ') }})::text), 1, 16))::bit(64)::bigint
{%- endmacro %}


{% macro checksum_agg(columns) -%}
    {#- An order-free checksum of a group of rows: the XOR of their row checksums. -#}
    bit_xor({{ row_checksum(columns) }})
{%- endmacro %}


{% macro raw_event_checksum_columns() -%}
    {#- What the fingerprint of an event day (int_change_event_days) hashes of each raw event.
        The future-dated flag is part of it: a day that stops being in the future has changed.
        The build stores the rendered row checksum in state.event_checksum, so that the erasure
        step (ml/data/erasure.py) can take an erased person's rows out of state.event_days. -#}
    {{ return([
        'event_id', 'customer_record_id', 'event_type', 'occurred_at',
        'occurred_at > ' ~ max_valid_timestamp()
    ]) }}
{%- endmacro %}


{% macro state_relation(name) -%}
    {#- A table of schema `state`, or none before the first complete build. -#}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {{ return(adapter.get_relation(database=target.database, schema='state', identifier=name)) }}
{%- endmacro %}


{% macro previous_state(name, empty_select) -%}
    {#- The rows of state.<name>, or `empty_select` (the same columns, no rows) before the first
        complete build. -#}
    {%- set relation = state_relation(name) -%}
    {%- if relation is none -%}
        {{ empty_select }}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}


{% macro previous_model(schema, name) -%}
    {#- The relation a model built last time, or none, read without ref(): a scope model reads
        the previous build of a model that itself depends on the scope. -#}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {{ return(adapter.get_relation(database=target.database, schema=schema, identifier=name)) }}
{%- endmacro %}


{% macro columns_of(relation) -%}
    {#- The quoted column names of a built relation (a placeholder while dbt parses). -#}
    {%- if not execute -%}{{ return(['1']) }}{%- endif -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do names.append(adapter.quote(column.name)) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{% macro incremental_materialization() -%}
    {#- The materialization of the incremental models. On Spark's session target every build is
        a full one (a table: is_incremental() is false there): replace_scope deletes rows, which
        Spark's Parquet tables cannot; incremental runs on Spark need Delta Lake or Iceberg
        tables (the thrift and Databricks targets, docs/spark.md). -#}
    {{ return(adapter.dispatch('incremental_materialization', 'crm_signals')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}


{% macro record_pending_scope(name) -%}
    {{ return(adapter.dispatch('record_pending_scope', 'crm_signals')(name)) }}
{%- endmacro %}

{% macro default__record_pending_scope(name) -%}
    {#- post-hook of a scope model: keep its rows in state.<name> until a build completes. -#}
    create schema if not exists state;
    create table if not exists state.{{ name }} as select * from {{ this }} where false;
    insert into state.{{ name }} select * from {{ this }}
{%- endmacro %}

{% macro spark__record_pending_scope(name) -%}
    {#- Nothing to keep: every Spark build is a full one (macro incremental_materialization). -#}
{%- endmacro %}


{% macro scope_dependencies(labels=false) -%}
    {#- The scope models, as refs dbt sees at parse time (in a model's `-- depends_on:` line).
        The label scope depends on the as-of grid, so only the label models take it. A unit test
        builds a model from its given inputs alone and never runs it incrementally. -#}
    {%- if model.resource_type == 'unit_test' -%}{{ return('') }}{%- endif -%}
    {{ ref('int_incremental_scope') }} {{ ref('int_incremental_changed_days') }}
    {{- ' ' }}{{ ref('int_incremental_changed_customers') }}
    {%- if labels %} {{ ref('int_incremental_label_scope') }}{% endif %}
{%- endmacro %}


{% macro definition_fingerprint() -%}
    {#- Changes when any model's SQL or a var the models read changes: the incremental tables
        were then built by other code and are recomputed whole. Macros are not covered; change
        one and run with --full-refresh (docs/operations.md). -#}
    {%- set parts = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
            {%- if node.resource_type == 'model' -%}
                {%- do parts.append(node.unique_id ~ '=' ~ node.checksum.checksum) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- for name in ['churn_horizon_days', 'as_of_warmup_months', 'incremental_lookback_days'] -%}
        {%- do parts.append(name ~ '=' ~ var(name)) -%}
    {%- endfor -%}
    {{ return(local_md5(parts | join(';'))) }}
{%- endmacro %}


{% macro incremental_scope(kind) -%}
    {#- The rows an incremental run replaces, as a predicate on the model's own columns:
        events        raw events whose day changed (base_crm__events adds their key's copies)
        event_keys    events of every day a run recomputed, the days of the copies of their
                      keys included: every copy of each event id base_crm__events re-ranked
        activity      days whose events changed, and persons whose records changed
        as_of         as-of dates after the first changed day, and changed persons
        labels_<n>    as above, reaching n days further back: a label looks n days ahead
                      (the churn horizon, the 90-day purchase window), and every as-of date
                      whose label window the new snapshot date closes is recomputed -#}
    {%- set scope = scope_relation('int_incremental_scope') -%}
    {%- set days = scope_relation('int_incremental_changed_days') -%}
    {%- set persons = scope_relation('int_incremental_changed_customers') -%}
    {%- if kind == 'events' -%}
        (
            cast(occurred_at as date) in (select activity_date from {{ days }} where raw_changed)
            or (select full_rebuild from {{ scope }})
        )
    {%- elif kind == 'event_keys' -%}
        (
            cast(occurred_at as date) in (select activity_date from {{ days }})
            or (select full_rebuild from {{ scope }})
        )
    {%- elif kind == 'activity' -%}
        (
            activity_date in (select activity_date from {{ days }})
            or customer_id in (select customer_id from {{ persons }} where identity_changed)
            or (select full_rebuild from {{ scope }})
        )
    {%- elif kind == 'as_of' -%}
        (
            as_of_date > (select rebuild_after from {{ scope }})
            or customer_id in (select customer_id from {{ persons }})
        )
    {%- elif kind.startswith('labels_') -%}
        {%- set label_scope = scope_relation('int_incremental_label_scope') %}
        (
            as_of_date > (select labels_after from {{ label_scope }})
                - {{ kind[7:] | int }} - 1
            or customer_id in (select customer_id from {{ persons }})
        )
    {%- else -%}
        {{ exceptions.raise_compiler_error("incremental_scope: unknown kind '" ~ kind ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{% macro scope_relation(name) -%}
    {#- A scope model: ref() in a model (its `-- depends_on:` line declares the dependency); in a
        test (tested_rows_scope), the relation itself: dbt lets a test ref() only what it tests. -#}
    {%- if model.resource_type != 'test' -%}{{ return(ref(name)) }}{%- endif -%}
    {{ return(graph.nodes['model.' ~ project_name ~ '.' ~ name].relation_name) }}
{%- endmacro %}


{% macro tested_rows_scope() -%}
    {#- The rows a data test of an incremental model reads in a `dbt build`: the scope this build
        replaced (a predicate), or '' for all rows. The rows outside it are the ones an earlier
        build wrote and tested, and stay as they were; every test of these models is about a row
        or a key, and every key holds the columns its scope is cut by (customer and as-of date,
        customer and day), so a duplicate can only be among the replaced rows. Only
        the tests that join or group (keys, relationships) are narrowed: a null or range test
        scans one column, and the scope's predicate costs more than the scan it saves (at 300k
        customers a not_null test took several times longer narrowed). Tested whole: `dbt test` on its own,
        --full-refresh, and the raw events (scope `events`), where a key's copies lie on other
        days. A model may name the scope its unique tests read (config `unique_test_scope`): the
        event id of stg_crm__events reads every copy of the keys the build re-ranked
        (`event_keys`), not 50M keys. -#}
    {%- if not execute or model.resource_type != 'test' or flags.WHICH != 'build'
        or flags.FULL_REFRESH or not model.attached_node
        or model.test_metadata is none
        or model.test_metadata.name not in ('unique', 'unique_combination', 'relationships') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) -%}
    {%- if tested is not none and model.test_metadata.name == 'unique'
        and tested.config.get('unique_test_scope') -%}
        {{ return(incremental_scope(tested.config.get('unique_test_scope'))) }}
    {%- endif -%}
    {%- if tested is none or tested.config.materialized != 'incremental'
        or tested.config.get('scope') in (none, 'events') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(incremental_scope(tested.config.get('scope'))) }}
{%- endmacro %}


{% macro default__get_where_subquery(relation) -%}
    {#- dbt's own (the test's `where` config), narrowed to tested_rows_scope(): a daily build
        tests the rows it wrote, not two years of history again. -#}
    {%- set predicates = [config.get('where', ''), tested_rows_scope()] | select | list -%}
    {%- if not predicates -%}{{ return(relation) }}{%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} where ({{ predicates | join(') and (') }})) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
{%- endmacro %}


{% macro get_incremental_replace_scope_sql(arg_dict) -%}
    {#- Delete the rows of the model's scope (config `scope`), then insert the recomputed ones.
        Unlike delete+insert on a unique key, rows that no longer exist (a corrected day, a person
        who is not active any more) are removed too. -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set kind = config.require('scope') -%}
    delete from {{ target }}
    where {{ incremental_scope(kind) }}
    {%- for extra in config.get('scope_also', []) %}
        or {{ extra | replace('__temp__', temp | string) }}
    {%- endfor %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ temp }}
{%- endmacro %}


{% macro commit_incremental_state(results) -%}
    {{ return(adapter.dispatch('commit_incremental_state', 'crm_signals')(results)) }}
{%- endmacro %}

{% macro spark__commit_incremental_state(results) -%}
    {#- No state: every Spark build is a full one (macro incremental_materialization). -#}
    {{ return('') }}
{%- endmacro %}

{% macro default__commit_incremental_state(results) -%}
    {#- on-run-end: when every incremental model and scope model built in this invocation, the
        current fingerprints become the state and the pending scope is cleared. A run that built
        only some of them (a selection, a failure) leaves the state, so the next run redoes it. -#}
    {%- if not execute or flags.WHICH not in ('run', 'build') -%}{{ return('') }}{%- endif -%}
    {%- set needed = {} -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and (
            node.config.materialized == 'incremental' or node.name.startswith('int_incremental_')
            or node.name.startswith('int_change_')
        ) -%}
            {%- do needed.update({node.name: node}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set built = [] -%}
    {%- for result in results -%}
        {%- if result.status == 'success' -%}{%- do built.append(result.node.unique_id) -%}{%- endif -%}
    {%- endfor -%}
    {%- for node in needed.values() -%}
        {%- if node.unique_id not in built -%}
            {{ log('Incremental state not committed: ' ~ node.name ~ ' did not build in this run; '
                ~ 'the next run redoes its scope', info=true) }}
            {{ return('') }}
        {%- endif -%}
    {%- endfor -%}
    {%- call statement('commit_incremental_state', fetch_result=false) -%}
        create schema if not exists state;
        drop table if exists state.event_days;
        create table state.event_days as
            select * from {{ needed['int_change_event_days'].relation_name }};
        drop table if exists state.event_checksum;
        create table state.event_checksum as
            select '{{ row_checksum(raw_event_checksum_columns()) | replace("'", "''") }}'
                as row_checksum_sql;
        drop table if exists state.customer_fingerprints;
        create table state.customer_fingerprints as
            select * from {{ needed['int_change_customer_fingerprints'].relation_name }};
        drop table if exists state.build;
        create table state.build as
            select scope.definition, scope.first_started_at, scope.categories_checksum,
                label_scope.snapshot_date
            from {{ needed['int_incremental_scope'].relation_name }} as scope
            cross join {{ needed['int_incremental_label_scope'].relation_name }} as label_scope;
        drop table if exists state.pending_scope;
        drop table if exists state.pending_label_scope;
        drop table if exists state.pending_days;
        drop table if exists state.pending_customers;
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {{ log('Incremental state committed', info=true) }}
    {{ return('') }}
{%- endmacro %}
