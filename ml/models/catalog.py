"""Every model with the source tables it needs: what a run can build on a given source.

A run trains and scores every model whose needed tables hold rows (``ml.data.sources.Needs``);
``crm-signals check-source`` and the run summary say, for every other one, which file would
enable it. A new model adds its package's ``NEEDS`` here.
"""

from ml.data.sources import Needs
from ml.models.churn.pipeline import NEEDS as CHURN
from ml.models.churn.snapshot import NEEDS as CHURN_SNAPSHOT
from ml.models.customer_value.pipeline import NEEDS as CUSTOMER_VALUE
from ml.models.lead_scoring.pipeline import NEEDS as LEAD_SCORING
from ml.models.next_best_action.pipeline import NEEDS as NEXT_BEST_ACTION
from ml.models.next_product.pipeline import NEEDS as NEXT_PRODUCT
from ml.models.retention_uplift.pipeline import NEEDS as RETENTION_UPLIFT
from ml.models.segments.pipeline import NEEDS as SEGMENTS

MODELS: tuple[Needs, ...] = (
    CHURN,
    CHURN_SNAPSHOT,
    LEAD_SCORING,
    CUSTOMER_VALUE,
    NEXT_PRODUCT,
    RETENTION_UPLIFT,
    SEGMENTS,
    NEXT_BEST_ACTION,
)
