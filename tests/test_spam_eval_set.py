"""The comment-spam evaluation set (eval/data/comment_spam_eval.jsonl) was written separately from every
training file: no text is the same after normalisation, and none is a near duplicate (character 8-gram
Jaccard) of any training row. The file is well formed and balanced, so its per-language figures mean
something."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from worker.settings import REPO_ROOT

EVAL = REPO_ROOT / "eval" / "data" / "comment_spam_eval.jsonl"
TRAINING = sorted((REPO_ROOT / "classifiers" / "data").glob("*.jsonl"))
OTHER_EVAL = REPO_ROOT / "eval" / "data" / "social_comment_spam_dev.jsonl"
NEAR = 0.5  # 8-gram Jaccard at or above this is a near duplicate
KEYS = {"text", "label", "lang", "platform", "split"}


def _norm(text: str) -> str:
    """NFKC, case-folded, every run of non-word characters (punctuation, emoji, spaces) collapsed to one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _grams(text: str, n: int = 8) -> frozenset[str]:
    t = _norm(text)
    return frozenset({t} if len(t) <= n else {t[i : i + n] for i in range(len(t) - n + 1)})


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def evaluation() -> list[dict]:
    return _rows(EVAL)


def test_the_eval_set_is_well_formed_and_balanced(evaluation: list[dict]) -> None:
    assert len(evaluation) >= 300
    for r in evaluation:
        assert set(r) == KEYS, r
        assert r["label"] in ("spam", "ham") and r["lang"] in ("en", "ja") and r["split"] == "test", r
        assert r["platform"] in ("youtube", "instagram", "tiktok", "facebook", "x"), r
        assert r["text"].strip() == r["text"] and r["text"], r
    counts = Counter((r["lang"], r["label"]) for r in evaluation)
    for lang in ("en", "ja"):
        spam, ham = counts[(lang, "spam")], counts[(lang, "ham")]
        assert min(spam, ham) >= 50 and abs(spam - ham) <= 0.1 * (spam + ham), counts
    assert {"youtube", "instagram", "tiktok", "facebook"} <= {r["platform"] for r in evaluation}
    keys = Counter(_norm(r["text"]) for r in evaluation)
    assert keys.most_common(1)[0][1] == 1, keys.most_common(3)


def test_no_eval_text_is_in_any_training_file(evaluation: list[dict]) -> None:
    assert len(TRAINING) >= 5 and any(p.name == "comment_spam_generated.jsonl" for p in TRAINING)
    eval_keys = {_norm(r["text"]) for r in evaluation}
    for path in [*TRAINING, OTHER_EVAL]:
        common = eval_keys & {_norm(r["text"]) for r in _rows(path)}
        assert not common, f"{path.name} holds eval texts: {sorted(common)[:5]}"


def test_no_eval_text_is_a_near_duplicate_of_a_training_row(evaluation: list[dict]) -> None:
    train = [(path.name, r["text"]) for path in TRAINING for r in _rows(path)]
    grams = [_grams(text) for _, text in train]
    index: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(grams):
        for gram in g:
            index[gram].append(i)
    near = []
    worst = 0.0
    for r in evaluation:
        mine = _grams(r["text"])
        shared: Counter[int] = Counter(i for gram in mine for i in index.get(gram, ()))
        for i, inter in shared.items():
            jaccard = inter / len(mine | grams[i])
            worst = max(worst, jaccard)
            if jaccard >= NEAR:
                near.append((round(jaccard, 2), r["text"], *train[i]))
    assert not near, near[:5]
    assert 0.0 < worst < NEAR  # the check did compare something


def test_the_gram_check_catches_a_light_rewrite() -> None:
    original = "Check out my channel, I post guitar covers every week!!"
    rewritten = "check out my channel i post guitar covers every week 🔥"
    a, b = _grams(original), _grams(rewritten)
    assert len(a & b) / len(a | b) >= NEAR
    unrelated = _grams("the bridge at 2:10 gives me chills")
    assert len(a & unrelated) / len(a | unrelated) < NEAR
