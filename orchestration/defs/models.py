"""What the model assets of the suite share: the MLflow config per model, the training tag."""

from dataclasses import replace

from ml.registry import MlflowConfig, ModelRegistration
from ml.settings import Settings

# Training assets carry this tag; the scoring job selects everything else.
TRAINING_TAG = {"crm/role": "training"}


def model_mlflow_config(settings: Settings, name: str) -> MlflowConfig:
    """Experiment and registered model ``name`` in the project's MLflow (sqlite)."""
    base = MlflowConfig(
        tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.mlflow_artifacts_dir
    )
    return replace(base, experiment=name, model_name=name)


def registration_metadata(registration: ModelRegistration) -> dict[str, str]:
    return {
        "model_version": registration.model_version,
        "alias": registration.alias,
        "promotion": registration.reason,
        "mlflow_run_id": registration.run_id,
    }
