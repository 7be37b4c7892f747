"""What the model assets of the suite share: MLflow config, the training tag, model cards."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml.core.settings import Settings
from ml.modelling.model_card import ModelCard, write_model_card
from ml.modelling.registry import MlflowConfig, ModelRegistration, log_artifact_dir

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


def model_card_metadata(
    config: MlflowConfig, registration: ModelRegistration, directory: Path, **card: Any
) -> dict[str, dg.MetadataValue]:
    """Write the version's model card (Markdown and HTML), log it to its MLflow run, link it.

    ``card`` holds the :class:`ml.modelling.model_card.ModelCard` fields other than name, version, alias,
    creation time and promotion, which come from the registration.
    """
    md, html = write_model_card(
        ModelCard(
            model_name=config.model_name,
            model_version=registration.model_version,
            alias=registration.alias,
            created_at=datetime.now(UTC),
            promotion=registration.reason,
            **card,
        ),
        directory,
    )
    log_artifact_dir(config, registration.run_id, directory, "model_card")
    return {
        "model_card": dg.MetadataValue.path(str(html)),
        "model_card_markdown": dg.MetadataValue.path(str(md)),
    }
