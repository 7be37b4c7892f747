{#- Moving tables in and out of Spark as Parquet (docs/spark.md). Both run with
    `dbt run-operation` on the spark target, so they use the profile's session, catalog and
    warehouse: nothing else needs to know the Spark settings. -#}

{% macro register_raw_parquet(folder) -%}
    {#- Registers every table of the source `raw` as a Spark table over the Parquet folder
        <folder>/<table> that ingest wrote (ml/core/spark.py), replacing an older registration.
        The data stays where it is; dbt reads it as raw.<table>. -#}
    {%- if target.type != 'spark' -%}
        {{ exceptions.raise_compiler_error('register_raw_parquet runs on a spark target, not ' ~ target.type) }}
    {%- endif -%}
    {%- set names = [] -%}
    {%- for source in graph.sources.values() if source.source_name == 'raw' -%}
        {%- do names.append(source.name) -%}
    {%- endfor -%}
    {%- do run_query('create database if not exists raw') -%}
    {%- for name in names | sort -%}
        {%- do run_query('drop table if exists raw.' ~ name) -%}
        {%- do run_query(
            "create table raw." ~ name ~ " using parquet location '" ~ folder ~ "/" ~ name ~ "'"
        ) -%}
        {{ log('registered raw.' ~ name ~ ' over ' ~ folder ~ '/' ~ name, info=true) }}
    {%- endfor -%}
{%- endmacro %}


{% macro export_parquet(schemas, folder) -%}
    {#- Writes every table and view of `schemas` to <folder>/<schema>.<name> as Parquet, for
        readers without Spark (DuckDB, pandas): the pipeline's marts, the parity test. Timestamps
        are written without a time zone (the session's is UTC), as DuckDB writes them. -#}
    {%- for schema in schemas -%}
        {#- SHOW TABLES lists the views too. -#}
        {%- set names = run_query('show tables in ' ~ schema).columns['tableName'].values() -%}
        {%- set relations = [] -%}
        {%- for name in names | sort -%}
            {%- do relations.append(api.Relation.create(schema=schema, identifier=name)) -%}
        {%- endfor -%}
        {%- for relation in relations -%}
            {%- set columns = [] -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- set quoted = adapter.quote(column.name) -%}
                {%- if column.dtype | lower == 'timestamp' -%}
                    {%- do columns.append('cast(' ~ quoted ~ ' as timestamp_ntz) as ' ~ quoted) -%}
                {%- else -%}
                    {%- do columns.append(quoted) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- do run_query(
                "insert overwrite directory '" ~ folder ~ "/" ~ schema ~ "." ~ relation.identifier
                ~ "' using parquet select " ~ columns | join(', ') ~ " from " ~ relation
            ) -%}
        {%- endfor -%}
        {{ log('exported ' ~ relations | length ~ ' relations of ' ~ schema ~ ' to ' ~ folder, info=true) }}
    {%- endfor -%}
{%- endmacro %}


{% macro spark__load_csv_rows(model, agate_table) -%}
    {#- dbt-spark 1.11's seed loader puts each value in quotes without escaping on the session
        method: a quote in a value ("people's republic of china") breaks the statement and a
        missing value arrives as the text 'None'. This writes escaped literals and nulls. -#}
    {%- set batch_size = get_batch_size() -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(batch_size) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                    {%- set type = column_override.get(col_name, inferred_type) -%}
                    {%- set value = row[loop.index0] -%}
                    {%- if value is none -%}
                        cast(null as {{ type }})
                    {%- else -%}
                        cast('{{ value | string | replace('\\', '\\\\') | replace("'", "\\'") }}' as {{ type }})
                    {%- endif -%}
                    {%- if not loop.last %},{% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}
            {%- do statements.append(sql) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{%- endmacro %}


{% macro spark__cast(field, type) -%}
    {#- The contracts of the marts (models/marts/_marts__models.yml) name their column types as
        DuckDB and PostgreSQL spell them; Spark spells text and double precision differently.
        dbt builds a contract's declared schema with this macro. -#}
    {%- set spark_types = {'text': 'string', 'varchar': 'string', 'double precision': 'double'} -%}
    cast({{ field }} as {{ spark_types.get(type | lower | trim, type) }})
{%- endmacro %}
