{#- Fails with every non-null value outside [min_value, max_value]; no max_value: no upper bound. -#}
{% test accepted_range(model, column_name, min_value, max_value=none) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }}
{%- if max_value is not none %}
    or {{ column_name }} > {{ max_value }}
{%- endif %}

{% endtest %}
