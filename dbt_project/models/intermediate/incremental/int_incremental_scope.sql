-- One row: what this run recomputes in the incremental models (macros/incremental.sql).
--   full_rebuild    no complete build yet, or the models, their vars, the first subscription
--                   start (it moves the as-of grid) or the product categories changed since:
--                   everything is recomputed
--   rebuild_after   as-of dates after this day are recomputed for every person: the first day
--                   whose events changed (int_incremental_changed_days, which includes the
--                   lookback days); 9999-12-31 when no day changed
-- plus what the state keeps of the build (the label models widen this scope:
-- int_incremental_label_scope). A scope left by a run that did not complete
-- (state.pending_scope) is merged in.
{{ config(post_hook="{{ record_pending_scope('pending_scope') }}") }}

with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

changed_days as (

    select * from {{ ref('int_incremental_changed_days') }}

),

categories as (

    -- the candidate categories of product_purchase_labels
    select distinct product_category
    from {{ ref('orders') }}
    where status = 'completed' and amount > 0 and product_category is not null

),

current_build as (

    select
        cast('{{ definition_fingerprint() }}' as {{ text_type() }}) as definition,
        (select min(started_at) from subscription_periods) as first_started_at,
        (select {{ checksum_agg(['product_category']) }} from categories) as categories_checksum

),

previous_build as (

    {{ previous_state('build', 'select * from current_build where false') }}

),

pending as (

    {{ previous_state('pending_scope', 'select
        cast(null as boolean) as full_rebuild,
        cast(null as date) as rebuild_after
    where false') }}

),

compared as (

    select
        current_build.*,
        previous_build.definition is null
            or previous_build.definition <> current_build.definition
            or previous_build.first_started_at is distinct from current_build.first_started_at
            or previous_build.categories_checksum
                is distinct from current_build.categories_checksum
            as definition_changed,
        (select min(activity_date) from changed_days) as first_changed_day
    from current_build
    left join previous_build on true

),

final as (

    select
        -- scope
        definition_changed or coalesce((select bool_or(full_rebuild) from pending), false)
            as full_rebuild,
        case
            when definition_changed then cast('0001-01-01' as date)
            else least(
                coalesce(first_changed_day, cast('9999-12-31' as date)),
                coalesce((select min(rebuild_after) from pending), cast('9999-12-31' as date))
            )
        end as rebuild_after,
        -- what the state keeps
        definition,
        first_started_at,
        categories_checksum
    from compared

)

select * from final
