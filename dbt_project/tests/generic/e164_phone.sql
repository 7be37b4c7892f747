{#- Fails with every value that is not '+' followed by 8 to 15 digits (E.164 form). -#}
{% test e164_phone(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not regexp_full_match({{ column_name }}, '\+[1-9][0-9]{7,14}')

{% endtest %}
