"""Classify once: one text pass feeding every model a brand uses.

Each model is still its own verified scikit-learn ``Pipeline`` (normalise ->
FeatureUnion(char TF-IDF, word TF-IDF[, sentence vectors]) -> calibrated linear
head). Run one after the other, three pipelines normalise the same text three
times, cut it into the same n-grams three times and look every n-gram up in three
dictionaries. :class:`SharedPass` does, per batch:

1. each distinct normaliser configuration once per text;
2. each distinct analyser (char_wb 2-5, word 1-2, ...) once per normalised text;
3. one dictionary lookup per n-gram, in the union of the models' vocabularies,
   then a numpy gather to each model's own columns (the counts are integers:
   exactly the matrix the model's CountVectorizer builds);
4. the sentence vector once per distinct normalised text;

and then hands each model's feature blocks to *that model's own* fitted
``TfidfTransformer``, ``FeatureUnion`` stacking and classifier, so the
probabilities are the ones the artifact's pipeline gives (tests compare them on
the shared datasets). A model whose pipeline has another shape is run as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from classifiers.sentence import SentenceVectors
from classifiers.text import TextNormalizer, normalize_all

#: Words whose n-gram ids are remembered per char_wb analyser (cleared when full).
WORD_CACHE = 50_000
_ANALYSER_PARAMS = (
    "analyzer",
    "ngram_range",
    "token_pattern",
    "lowercase",
    "strip_accents",
    "preprocessor",
    "tokenizer",
    "stop_words",
    "encoding",
    "decode_error",
    "input",
)


def _normaliser_key(step: TextNormalizer) -> tuple[bool, bool, bool, bool]:
    return (step.urls, step.mentions, step.emails, step.phones)


def _analyser_key(vec: TfidfVectorizer) -> tuple:
    params = vec.get_params(deep=False)
    return tuple((name, repr(params[name])) for name in _ANALYSER_PARAMS)


def _words_are_units(vec: TfidfVectorizer) -> bool:
    """char_wb n-grams of a text are the concatenation of its words' (split on whitespace)."""
    return (
        vec.analyzer == "char_wb"
        and not vec.lowercase
        and vec.strip_accents is None
        and vec.preprocessor is None
        and vec.input == "content"
    )


class _Head:
    """One model's view of the shared features."""

    def __init__(self, model: Any):
        self.model = model
        est = model.estimator
        self.shared = False
        if not (isinstance(est, Pipeline) and len(est.steps) == 3):
            return
        (_, norm), (_, union), (_, head) = est.steps
        if not isinstance(norm, TextNormalizer) or not isinstance(union, FeatureUnion) or union.transformer_weights:
            return
        blocks = []
        for _, part in union.transformer_list:
            if isinstance(part, TfidfVectorizer) and not part.binary:
                blocks.append(("ngrams", part))
            elif isinstance(part, SentenceVectors):
                blocks.append(("sentence", part))
            else:
                return
        self.norm_key = _normaliser_key(norm)
        self.union, self.head, self.blocks = union, head, blocks
        self.columns: list[np.ndarray | None] = []
        self.keys: list[tuple | None] = []
        self.shared = True


class SharedPass:
    """Probabilities of several verified models over the same texts, computed in one text pass."""

    def __init__(self, models: Sequence[Any]):
        self.heads = [_Head(m) for m in models]
        self.normalisers: dict[tuple, dict[str, bool]] = {}
        self.vocab: dict[tuple, dict[str, int]] = {}  # analyser -> union vocabulary of every model using it
        self.analysers: dict[tuple, Any] = {}
        self.inputs: dict[tuple, set[tuple]] = {}  # analyser -> the normalisers whose text it reads
        self.word_cache: dict[tuple, dict[str, list[int]]] = {}  # char_wb analyser -> word -> its n-grams' ids
        for head in self.heads:
            if not head.shared:
                continue
            urls, mentions, emails, phones = head.norm_key
            self.normalisers[head.norm_key] = {"urls": urls, "mentions": mentions, "emails": emails, "phones": phones}
            for kind, part in head.blocks:
                key = None
                if kind == "ngrams":
                    key = _analyser_key(part)
                    union = self.vocab.setdefault(key, {})
                    if key not in self.analysers:
                        self.analysers[key] = part.build_analyzer()
                        if _words_are_units(part):
                            self.word_cache[key] = {}
                    self.inputs.setdefault(key, set()).add(head.norm_key)
                    for term in part.vocabulary_:
                        union.setdefault(term, len(union))
                head.keys.append(key)
        for head in self.heads:
            if head.shared:
                head.columns = [
                    None if key is None else self._selection(key, part)
                    for key, (_, part) in zip(head.keys, head.blocks, strict=True)
                ]

    def _lookup(self, key: tuple, doc: str) -> list[int]:
        return list(map(self.vocab[key].get, self.analysers[key](doc), repeat(-1)))

    def _selection(self, key: tuple, part: TfidfVectorizer) -> np.ndarray:
        """Union column -> this model's column (-1: not in its vocabulary; the last is the unknown column)."""
        union = self.vocab[key]
        columns = np.full(len(union) + 1, -1, dtype=np.int64)
        for term, column in part.vocabulary_.items():
            columns[union[term]] = column
        return columns

    def predict_proba(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (len(texts), n_labels) array per model, in the order the models were given."""
        texts = [str(t) for t in texts]
        configs = list(self.normalisers)
        normalised: dict[tuple, list[str]] = {key: [] for key in configs}
        for text in texts:
            for key, value in normalize_all(text, configs).items():
                normalised[key].append(value)
        counts: dict[tuple, tuple[sp.csr_matrix, dict[str, int]]] = {}
        for key, union in self.vocab.items():
            # each distinct normalised string is analysed once, whichever normalisers produced it
            unique: dict[str, int] = {}
            for norm in self.inputs[key]:
                for doc in normalised[norm]:
                    unique.setdefault(doc, len(unique))
            ids: list[int] = []
            indptr = np.zeros(len(unique) + 1, dtype=np.int64)
            words = self.word_cache.get(key)
            if words is not None:  # char_wb n-grams never cross a space: look each word up once
                if len(words) > WORD_CACHE:
                    words.clear()
                for row, doc in enumerate(unique):
                    for word in doc.split():
                        found = words.get(word)
                        if found is None:
                            found = words[word] = self._lookup(key, word)
                        ids.extend(found)
                    indptr[row + 1] = len(ids)
            else:
                for row, doc in enumerate(unique):
                    ids.extend(self._lookup(key, doc))
                    indptr[row + 1] = len(ids)
            # unknown n-grams land in the extra last column, which no model selects
            matrix = sp.csr_matrix(
                (np.ones(len(ids), dtype=np.float32), np.asarray(ids, dtype=np.int64), indptr),
                shape=(len(unique), len(union) + 1),
            )
            counts[key] = (matrix, unique)
        sentences = self._sentences(normalised)
        out = []
        for head in self.heads:
            if not head.shared:
                out.append(np.asarray(head.model.predict_proba(texts), dtype=np.float64))
                continue
            blocks = []
            for (kind, part), selection, analyser in zip(head.blocks, head.columns, head.keys, strict=True):
                if kind == "sentence" or selection is None or analyser is None:
                    blocks.append(part.scale(sentences[head.norm_key]))
                    continue
                matrix, unique = counts[analyser]
                rows = matrix[[unique[doc] for doc in normalised[head.norm_key]]]
                cols = selection[rows.indices]
                keep = cols >= 0
                row_of = np.repeat(np.arange(len(texts)), np.diff(rows.indptr))[keep]
                local = sp.csr_matrix(
                    (rows.data[keep].astype(part.dtype), (row_of, cols[keep])),
                    shape=(len(texts), len(part.vocabulary_)),
                )  # integer counts, duplicates summed
                local.sum_duplicates()
                local.sort_indices()
                blocks.append(part._tfidf.transform(local, copy=False))
            features = head.union._hstack(blocks)
            out.append(np.asarray(head.head.predict_proba(features), dtype=np.float64))
        return out

    def _sentences(self, normalised: dict[tuple, list[str]]) -> dict[tuple, np.ndarray]:
        users = [h for h in self.heads if h.shared and any(kind == "sentence" for kind, _ in h.blocks)]
        if not users:
            return {}
        table = next(part for kind, part in users[0].blocks if kind == "sentence").table()
        for head in users[1:]:
            next(part for kind, part in head.blocks if kind == "sentence").table()  # same representation, or refuse
        wanted = {h.norm_key for h in users}
        index: dict[str, int] = {}
        for key in wanted:
            for doc in normalised[key]:
                index.setdefault(doc, len(index))
        vectors = table.encode(list(index))
        return {key: vectors[[index[t] for t in normalised[key]]] for key in wanted}
