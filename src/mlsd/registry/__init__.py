"""Model registry: MLflow-backed versions, lineage and aliases."""

from mlsd.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    Lineage,
    ModelRegistry,
    RegisteredVersion,
    VersionInfo,
    code_revision,
)

__all__ = ["CHALLENGER", "CHAMPION", "Lineage", "ModelRegistry", "RegisteredVersion", "VersionInfo", "code_revision"]
