{#- Fails with one row per duplicated combination of the given columns (a compound key). -#}
{% test unique_combination(model, combination) %}

select
    {{ combination | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1

{% endtest %}
