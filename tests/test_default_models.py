"""The shipped default models: rebuilt from their recipes, they predict exactly what the shipped files do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifiers.persistence import load_artifact
from classifiers.recipes import RECIPES, build_default
from classifiers.registry import SHIPPED_DIR
from worker.demo import load_sample

PROBE = [e["text"] for e in load_sample()] + ["", "🙂", "ＦＲＥＥ ｉＰｈｏｎｅ!!! call 08001234567", "配信停止"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_rebuilding_reproduces_the_shipped_model(name: str, shared: Path, tmp_path: Path) -> None:
    shipped = load_artifact(SHIPPED_DIR / name)
    result = build_default(name, shared, tmp_path)
    rebuilt = load_artifact(tmp_path / name)
    assert rebuilt.labels == shipped.labels
    assert [s.sha256 for s in rebuilt.manifest.training] == [s.sha256 for s in shipped.manifest.training]
    assert rebuilt.manifest.config == shipped.manifest.config
    assert rebuilt.manifest.version == shipped.manifest.version  # derived from data + config hashes, no date
    assert np.allclose(rebuilt.predict_proba(PROBE), shipped.predict_proba(PROBE), atol=1e-6), (
        f"{name}: the shipped artifact is not what its recipe builds; run `make models` and commit"
    )
    assert result.train_seconds < 120
