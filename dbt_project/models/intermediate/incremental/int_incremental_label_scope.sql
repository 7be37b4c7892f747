-- One row: labels_after, the scope of the label models. A label looks ahead (churned within the
-- horizon, purchased within 90 days) and says whether its window is observed by the snapshot
-- date, so besides the as-of dates after rebuild_after it recomputes, when the snapshot date
-- moved, every as-of date whose window the move can close. The label models reach a further
-- window length back from labels_after (macro incremental_scope, kind labels_<days>).
{{ config(post_hook="{{ record_pending_scope('pending_label_scope') }}") }}

with

scope as (

    select * from {{ ref('int_incremental_scope') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

current_snapshot as (

    select max(snapshot_date) as snapshot_date from as_of_dates

),

previous_build as (

    {{ previous_state('build', 'select cast(null as date) as snapshot_date where false') }}

),

pending as (

    {{ previous_state('pending_label_scope', 'select cast(null as date) as labels_after where false') }}

),

final as (

    select
        -- scope
        least(
            scope.rebuild_after,
            case
                when current_snapshot.snapshot_date
                    is distinct from (select max(snapshot_date) from previous_build)
                    then coalesce(
                        least(
                            current_snapshot.snapshot_date,
                            (select max(snapshot_date) from previous_build)
                        ),
                        cast('0001-01-01' as date)
                    )
                else cast('9999-12-31' as date)
            end,
            coalesce((select min(labels_after) from pending), cast('9999-12-31' as date))
        ) as labels_after,
        -- what the state keeps
        current_snapshot.snapshot_date
    from scope
    cross join current_snapshot

)

select * from final
