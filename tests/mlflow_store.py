"""A ready MLflow SQLite store for tests: creating one costs seconds (schema migrations), copying a
template file costs nothing, so each test gets a fresh store by copying."""
from __future__ import annotations

import shutil
from pathlib import Path

_TEMPLATE: Path | None = None


def fresh_store(folder: Path, template_dir: Path) -> Path:
    """An initialised, empty `mlflow.db` in `folder` (the template is built once per session)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        from mlflow import MlflowClient

        template = template_dir / "template.db"
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates the tables
        _TEMPLATE = template
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(_TEMPLATE, folder / "mlflow.db"))
