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

and then applies each model's own fitted weights: its TF-IDF weighting (the
arithmetic of ``TfidfTransformer.transform``), the stacking of its blocks and its
calibrated heads (the arithmetic of ``CalibratedClassifierCV`` with temperature
scaling over ``PrunedLinear`` / ``RidgeClassifier``, and ``FusedLinear.fuse``),
without scikit-learn's per-call input validation, which cost more than the
arithmetic at batches of 64. The probabilities are the ones the artifact's
pipeline gives (tests compare them on the shared datasets). A model whose
pipeline has another shape, or a head of another kind, is run by scikit-learn as is.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import normalize
from sklearn.utils.extmath import softmax
from scipy.sparse._sparsetools import csr_matvec, csr_matvecs
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from classifiers.contextual import ContextVectors
from classifiers.estimators import FusedLinear, PrunedLinear, TwoStageLinear
from classifiers.features import TokenCoverage, columns
from classifiers.sentence import SentenceVectors
from classifiers.text import TOKEN_PATTERN, TextNormalizer, normalize_all

#: Words whose n-gram ids are remembered per char_wb analyser, and whose tokens per word analyser (cleared when full).
WORD_CACHE = 50_000
#: Token patterns none of whose matches holds or touches whitespace (classifiers.text's own and scikit-learn's
#: default): a text's tokens are then its whitespace-separated words' tokens, in order (see SharedPass._tokens).
_WORDWISE_PATTERNS = (TOKEN_PATTERN, r"(?u)\b\w\w+\b")
_INT_SIZE = array("i").itemsize
#: Padded words up to this many characters have their char_wb n-grams cut by a cached ``itemgetter`` of slices
#: (one C call a word; ~4 slices a character per length, per analyser); longer ones slice by slice.
SLICED_SIZES = 64
#: A linear head's weights are kept dense (float32) up to this many entries (16 MB), e.g. 9 intents x 400k n-grams.
DENSE_WEIGHTS = 4_000_000
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


def _char_wb_spans(size: int, low: int, high: int) -> list[slice]:
    """The slices of a padded word of ``size`` characters that are its char_wb n-grams (``low``-``high``), in
    scikit-learn's order: a padded word no longer than n counts once (itself), for the shortest such n."""
    if size <= low:
        return [slice(0, size)]
    spans = [slice(i, i + n) for n in range(low, min(high, size - 1) + 1) for i in range(size - n + 1)]
    if high >= size:
        spans.append(slice(0, size))
    return spans


def _char_wb_grams(padded: str, low: int, high: int) -> list[str]:
    """A padded word's char_wb n-grams (:func:`_char_wb_spans`), cut one by one."""
    return [padded[span] for span in _char_wb_spans(len(padded), low, high)]


def _alone(padded: str) -> tuple[str]:
    return (padded,)


def _gram_getters(low: int, high: int) -> list[Callable[[str], Any]]:
    """Per size of a padded word up to :data:`SLICED_SIZES`, a function cutting its char_wb n-grams
    (:func:`_char_wb_spans`) in one call, as a tuple: an ``operator.itemgetter`` of the slices."""
    getters: list[Callable[[str], Any]] = []
    for size in range(SLICED_SIZES + 1):
        spans = _char_wb_spans(size, low, high)
        getters.append(itemgetter(*spans) if len(spans) > 1 else _alone)  # one item: itemgetter gives no tuple
    return getters


_C_INTS: dict[int, struct.Struct] = {}  # see _c_ints
#: Packers kept for word n-gram counts up to this (words up to ~250 characters); longer words make their own.
_C_INTS_KEPT = 1024


def _c_ints(count: int) -> struct.Struct:
    """The packer of ``count`` C ints in native order and size (``array("i", ...).tobytes()``'s bytes)."""
    found = _C_INTS.get(count)
    if found is None:
        found = struct.Struct(f"{count}i")
        if count <= _C_INTS_KEPT:  # the n-gram counts of words up to a few hundred characters
            _C_INTS[count] = found
    return found


def _normaliser_key(step: TextNormalizer) -> tuple[bool, bool, bool, bool]:
    return (step.urls, step.mentions, step.emails, step.phones)


def _analyser_key(vec: TfidfVectorizer) -> tuple:
    params = vec.get_params(deep=False)
    return tuple((name, repr(params[name])) for name in _ANALYSER_PARAMS)


def _plain_words(vec: TfidfVectorizer) -> bool:
    """word n-grams of the vectorizer's own tokens, with nothing else done to them (see :meth:`SharedPass._words`)."""
    return (
        vec.analyzer == "word"
        and not vec.lowercase
        and vec.strip_accents is None
        and vec.preprocessor is None
        and vec.tokenizer is None
        and vec.stop_words is None
        and vec.input == "content"
    )


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
            elif isinstance(part, TokenCoverage):
                blocks.append(("coverage", part))
            elif isinstance(part, ContextVectors):
                blocks.append(("context", part))
            else:
                return
        self.norm_key = _normaliser_key(norm)
        self.union, self.head, self.blocks = union, head, blocks
        self.fused = isinstance(head, FusedLinear) and blocks[-1][0] == "sentence"
        self.two_stage = isinstance(head, TwoStageLinear)
        self.first_columns = 0  # a two-stage head: its first head's score columns (the second's follow)
        if self.fused:
            self.weights = [_linear_weights(head.ngram_head_), _linear_weights(head.sentence_head_)]
            if head.context_columns:
                self.weights.append(_linear_weights(head.context_head_))
        elif self.two_stage:  # both heads read the same columns: one product gives both heads' scores
            first, second = _linear_weights(head.first_), _linear_weights(head.second_)
            self.weights = [_side_by_side(first, second)]
            self.first_columns = 0 if first is None else first[0].shape[1]
        else:
            self.weights = [_linear_weights(head)]
        self.columns: list[np.ndarray | None] = []
        self.keys: list[int | None] = []  # its blocks' analysers (SharedPass numbers them)
        self.direct = self._direct_weights()
        self.shared = True

    def _direct_weights(self) -> dict[str, Any] | None:
        """What :func:`_direct_scores` needs, when the n-gram head reads n-gram blocks only, all weighted
        alike (sublinear tf, idf, l2 norm), through dense float32 weights; else None (the matrix path)."""
        weights = self.weights[0]
        ngram_blocks = [part for _, part in (self.blocks[:-1] if self.fused else self.blocks)]
        if weights is None or not isinstance(weights[0], np.ndarray) or weights[0].dtype != np.float32:
            return None
        if any(kind != "ngrams" for kind, _ in (self.blocks[:-1] if self.fused else self.blocks)):
            return None
        weightings = [part._tfidf for part in ngram_blocks]
        if any(
            not (w.sublinear_tf and w.norm == "l2" and hasattr(w, "idf_") and part.dtype == np.float32)
            for w, part in zip(weightings, ngram_blocks, strict=True)
        ):
            return None
        sizes = [len(part.vocabulary_) for part in ngram_blocks]
        if sum(sizes) != weights[0].shape[0]:
            return None
        # idf and weights get one more, zero entry (row): the column "none of the head's n-grams" (_targets);
        # the head's own weights become a view of the others (the same values, no second copy)
        stacked = np.vstack([weights[0], np.zeros((1, weights[0].shape[1]), dtype=np.float32)])
        self.weights[0] = (stacked[:-1], weights[1])
        return {
            "offsets": np.cumsum([0, *sizes])[:-1],
            "idf": np.concatenate(
                [*(np.asarray(w.idf_, dtype=np.float32) for w in weightings), np.zeros(1, np.float32)]
            ),
            "width": int(sum(sizes)),
            "weights": stacked,
        }

    def proba_from_scores(self, scores: np.ndarray, sentences: np.ndarray | None) -> np.ndarray:
        """Probabilities from the n-gram head's decision scores (before its intercept) [and the sentence block]."""
        ngram_head = self.head.ngram_head_ if self.fused else self.head
        linear = self.weights[0]
        if linear is None:  # a head scored directly has linear weights (_direct_weights)
            raise RuntimeError("decision scores for a head without linear weights")
        if self.two_stage:
            return self._two_stage(scores + linear[1])
        ngram = _temperature(ngram_head, scores + linear[1])
        if not self.fused:
            return ngram
        sentence = _calibrated(self.head.sentence_head_, np.asarray(sentences, dtype=np.float64), self.weights[1])
        return self.head.fuse(ngram, sentence, None)

    def proba(self, blocks: list[Any]) -> np.ndarray:
        """Probabilities from the feature blocks (sparse n-gram TF-IDF blocks; the sentence block last, dense)."""
        if self.fused:
            # what FusedLinear._split hands its heads: n-gram blocks, [coverage column,] sentence vectors
            sentences = np.asarray(blocks[-1], dtype=np.float64)
            coverage, context = None, None
            if self.head.coverage_floor is not None and self.head.context_columns:
                context = blocks[-2]  # (rows below the floor, their full-network vectors)
                blocks = blocks[:-1]
            if self.head.coverage_floor is not None:
                coverage = np.asarray(blocks[-2], dtype=np.float64)
                blocks = blocks[:-1]
            ngrams = sp.hstack(blocks[:-1], format="csr")
            sentence_proba = _calibrated(self.head.sentence_head_, sentences, self.weights[1])
            if context is not None and len(context[0]):
                low, vectors = context
                sentence_proba[low] = _calibrated(self.head.context_head_, vectors, self.weights[2])
            return self.head.fuse(_calibrated(self.head.ngram_head_, ngrams, self.weights[0]), sentence_proba, coverage)
        blocks = [sp.csr_matrix(b if b.ndim == 2 else b[:, None]) if isinstance(b, np.ndarray) else b for b in blocks]
        if self.two_stage and self.weights[0] is not None:
            coef_t, intercept = self.weights[0]
            scores = self.union._hstack(blocks) @ coef_t
            return self._two_stage((scores.toarray() if sp.issparse(scores) else np.asarray(scores)) + intercept)
        return _calibrated(self.head, self.union._hstack(blocks), self.weights[0])

    def _two_stage(self, scores: np.ndarray) -> np.ndarray:
        """A two-stage head's probabilities from both heads' decision scores side by side (with intercepts)."""
        cut = self.first_columns
        first = _temperature(self.head.first_, scores[:, :cut])
        second = _temperature(self.head.second_, scores[:, cut:])
        return self.head.combine(first, second)


class SharedPass:
    """Probabilities of several verified models over the same texts, computed in one text pass."""

    def __init__(self, models: Sequence[Any]):
        self.heads = [_Head(m) for m in models]
        self.normalisers: dict[tuple, dict[str, bool]] = {}
        # analysers are numbered (their parameters, ``_analyser_key``, are a tuple of 11 pairs, rehashed on
        # every lookup of a dictionary keyed by them)
        self.analyser_numbers: dict[tuple, int] = {}
        self.vocab: dict[int, dict[str, int]] = {}  # analyser -> union vocabulary of every model using it
        self.analysers: dict[int, Any] = {}
        self.inputs: dict[int, set[tuple]] = {}  # analyser -> the normalisers whose text it reads
        self.word_cache: dict[int, dict[str, bytes]] = {}  # char_wb analyser -> word -> its n-grams' ids (C ints)
        self.char_ranges: dict[int, tuple[int, int]] = {}  # char_wb analyser -> its n range
        self.gram_getters: dict[int, list[Callable[[str], Any]]] = {}  # char_wb analyser -> see _gram_getters
        self.tokenizers: dict[int, tuple[Any, tuple[int, int]]] = {}  # plain word analyser -> tokenizer, n range
        self.token_cache: dict[int, dict[str, tuple[str, ...]]] = {}  # plain word analyser -> word -> its tokens
        self._table: Any = None  # the sentence representation, once a batch has needed it
        self._words_of: dict[str, list[str]] = {}  # this batch's normalised texts -> their words (_split)
        for head in self.heads:
            if not head.shared:
                continue
            urls, mentions, emails, phones = head.norm_key
            self.normalisers[head.norm_key] = {"urls": urls, "mentions": mentions, "emails": emails, "phones": phones}
            for kind, part in head.blocks:
                key = None
                if kind == "ngrams":
                    key = self.analyser_numbers.setdefault(_analyser_key(part), len(self.analyser_numbers))
                    union = self.vocab.setdefault(key, {})
                    if key not in self.analysers:
                        self.analysers[key] = part.build_analyzer()
                        if _words_are_units(part):
                            self.word_cache[key] = {}
                            self.char_ranges[key] = part.ngram_range
                            self.gram_getters[key] = _gram_getters(*part.ngram_range)
                        elif _plain_words(part):
                            self.tokenizers[key] = (part.build_tokenizer(), part.ngram_range)
                            if part.token_pattern in _WORDWISE_PATTERNS:
                                self.token_cache[key] = {}
                    self.inputs.setdefault(key, set()).add(head.norm_key)
                    for term in part.vocabulary_:
                        union.setdefault(term, len(union))
                head.keys.append(key)
        for key, union in self.vocab.items():
            # union ids in term order, as scikit-learn numbers a vocabulary's columns: a model's columns
            # then come in the union's order, so one sort of the union's n-grams serves every head
            self.vocab[key] = dict(zip(sorted(union), columns(len(union)), strict=False))
        for head in self.heads:
            if head.shared:
                head.columns = [
                    None if key is None else self._selection(key, part)
                    for key, (_, part) in zip(head.keys, head.blocks, strict=True)
                ]
                if head.direct is not None:
                    direct = head.direct
                    blocks = head.columns[: len(direct["offsets"])]
                    direct["ordered"] = all(_increasing(selection) for selection in blocks)
                    if direct["ordered"]:
                        direct["targets"] = [
                            _targets(s, offset, direct["width"])
                            for s, offset in zip(blocks, direct["offsets"], strict=True)
                        ]

    def _lookup(self, key: int, doc: str) -> list[int]:
        return list(map(self.vocab[key].get, self.analysers[key](doc), repeat(-1)))

    def _word_grams(self, key: int, word: str) -> Sequence[str]:
        """One word's char_wb n-grams: ``_char_wb_ngrams`` of a text without whitespace (the word padded
        with a space each side; a padded word no longer than n counts once, for the shortest such n), in
        the same order, without scikit-learn's per-call preprocessing and decoding chain."""
        padded = f" {word} "
        size = len(padded)
        if size <= SLICED_SIZES:  # cut in one C call by the length's slices
            return cast(Sequence[str], self.gram_getters[key][size](padded))
        return _char_wb_grams(padded, *self.char_ranges[key])

    def _word_lookup(self, key: int, word: str) -> list[int]:
        """The ids of one word's char_wb n-grams (:meth:`_word_grams`; -1: not in the union vocabulary)."""
        return list(map(self.vocab[key].get, self._word_grams(key, word), repeat(-1)))

    def _word_ids(self, key: int, word: str) -> bytes:
        """A word's char_wb n-gram ids as C ints (:meth:`_word_lookup`), remembered (it may come twice in one
        text). Packed by a ``struct.Struct`` per count: ``array("i", ids)`` parses each int through
        ``PyArg_Parse`` (~180 instructions an n-gram, ~20k a message on the benchmark's new words)."""
        words = self.word_cache[key]
        found = words.get(word)
        if found is None:
            grams = self._word_grams(key, word)
            found = words[word] = _c_ints(len(grams)).pack(*map(self.vocab[key].get, grams, repeat(-1)))
        return found

    def _words(self, key: int, doc: str) -> list[int]:
        """The ids of ``doc``'s word n-grams: the analyser's n-grams (``_word_ngrams``), in another order
        (counts do not see the order), without building the analyser's list of strings first."""
        tokenize, (low, high) = self.tokenizers[key]
        get = self.vocab[key].get
        tokens = tokenize(doc) if key not in self.token_cache else self._tokens(key, doc)
        ids = list(map(get, tokens, repeat(-1))) if low == 1 else []
        if low <= 2 <= high:  # bigrams: the pairs joined by a space, as " ".join(tokens[i : i + 2])
            ids += [get(f"{first} {second}", -1) for first, second in zip(tokens, tokens[1:], strict=False)]
        for n in range(max(low, 3), min(high, len(tokens)) + 1):
            ids += [get(" ".join(tokens[i : i + n]), -1) for i in range(len(tokens) - n + 1)]
        return ids

    def _split(self, doc: str) -> list[str]:
        """``doc.split()``, once per batch for all the analysers that read a text word by word."""
        words = self._words_of.get(doc)
        if words is None:
            words = self._words_of[doc] = doc.split()
        return words

    def _tokens(self, key: int, doc: str) -> list[str]:
        """``tokenize(doc)`` from its words' tokens, each word tokenised once (remembered). Exact for the
        patterns of ``_WORDWISE_PATTERNS``: no match holds whitespace, none looks past its own characters
        but for ``\\b``, which sees whitespace and a text's edge alike, and a scan that fails at a position
        moves one character on, so a scan of the text restarts at each word's first character as a scan of
        the word alone starts there (``tests/test_shared_pass.py`` compares them on the shared texts)."""
        words = self.token_cache[key]
        parts = self._split(doc)
        found = list(map(words.get, parts))
        if None in found:
            tokenize = self.tokenizers[key][0]
            if len(words) > WORD_CACHE:
                words.clear()
            found = [
                (words.setdefault(word, tuple(tokenize(word))) if tokens is None else tokens)
                for tokens, word in zip(found, parts, strict=True)
            ]
        return list(chain.from_iterable(cast(list[tuple[str, ...]], found)))

    def _selection(self, key: int, part: TfidfVectorizer) -> np.ndarray:
        """Union column -> this model's column (-1: not in its vocabulary; the last is the unknown column)."""
        union = self.vocab[key]
        columns = np.full(len(union) + 1, -1, dtype=np.int32 if len(part.vocabulary_) < 2**31 else np.int64)
        for term, column in part.vocabulary_.items():
            columns[union[term]] = column
        return columns

    def predict_proba(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (len(texts), n_labels) array per model, in the order the models were given."""
        texts = [str(t) for t in texts]
        self._words_of = {}
        configs = list(self.normalisers)
        normalised: dict[tuple, list[str]] = {config: [] for config in configs}
        for text in texts:
            for config, value in normalize_all(text, configs).items():
                normalised[config].append(value)
        counts: dict[int, tuple[np.ndarray, np.ndarray, dict[str, int]]] = {}
        for key, union in self.vocab.items():
            # each distinct normalised string is analysed once, whichever normalisers produced it
            unique: dict[str, int] = {}
            for norm in self.inputs[key]:
                for doc in normalised[norm]:
                    unique.setdefault(doc, len(unique))
            indptr = np.zeros(len(unique) + 1, dtype=np.int64)
            words = self.word_cache.get(key)
            if words is not None:  # char_wb n-grams never cross a space: look each word up once
                if len(words) > WORD_CACHE:
                    words.clear()
                chunks: list[bytes] = []  # each word's ids as C ints, joined once per batch
                sizes = []
                for doc in unique:
                    parts = self._split(doc)
                    cached = list(map(words.get, parts))
                    found = (
                        cast(list[bytes], cached)
                        if None not in cached
                        else [
                            self._word_ids(key, word) if ids is None else ids
                            for ids, word in zip(cached, parts, strict=True)
                        ]
                    )
                    chunks += found
                    sizes.append(sum(map(len, found)))
                np.cumsum(sizes, out=indptr[1:])
                indptr //= _INT_SIZE
                columns = np.frombuffer(b"".join(chunks), dtype=np.intc).copy()
            else:
                ids: list[int] = []
                lookup = self._words if key in self.tokenizers else self._lookup
                for row, doc in enumerate(unique):
                    ids.extend(lookup(key, doc))
                    indptr[row + 1] = len(ids)
                columns = np.asarray(ids, dtype=np.intc)
            # unknown n-grams (-1) land in the extra last column, which no model selects
            columns[columns < 0] = len(union)
            rows = np.repeat(np.arange(len(unique), dtype=np.int64), np.diff(indptr))
            counts[key] = (rows, columns, unique)  # one entry per n-gram occurrence
        sentences = self._sentences(normalised)
        distinct: dict[int, tuple[np.ndarray, ...]] = {}  # see _distinct_counts
        out = []
        for head in self.heads:
            if not head.shared:
                out.append(np.asarray(head.model.predict_proba(texts), dtype=np.float64))
                continue
            if head.direct is not None:
                analysers = head.keys[: len(head.direct["offsets"])]
                first = counts[analysers[0]][2] if analysers[0] is not None else None
                if head.direct["ordered"] and all(counts[a][2] == first for a in analysers if a is not None):
                    # its analysers number the same texts alike: one sort of each one's n-grams serves every head
                    for analyser in analysers:
                        if analyser is not None and analyser not in distinct:
                            distinct[analyser] = _distinct_counts(counts[analyser], len(self.vocab[analyser]))
                    scores = _ordered_scores(head, head.direct, counts, distinct, normalised[head.norm_key])
                else:
                    scores = _direct_scores(head, head.direct, counts, normalised[head.norm_key])
                sentence = sentences[head.norm_key] * np.float32(head.blocks[-1][1].weight) if head.fused else None
                out.append(head.proba_from_scores(scores, sentence))
                continue
            blocks: list[Any] = []
            for (kind, part), selection, analyser in zip(head.blocks, head.columns, head.keys, strict=True):
                if kind == "sentence":
                    blocks.append(sentences[head.norm_key] * np.float32(part.weight))
                    continue
                if kind == "coverage":
                    blocks.append(part.coverage(normalised[head.norm_key]))
                    continue
                if kind == "context":  # the full network, only for the texts below the coverage floor
                    low = head.head.below_floor(blocks[-1])
                    docs = normalised[head.norm_key]
                    vectors = part.network().encode([docs[i] for i in low]) if len(low) else None
                    blocks.append((low, None if vectors is None else np.asarray(vectors, dtype=np.float64)))
                    continue
                if selection is None or analyser is None:  # every n-gram block has both
                    raise RuntimeError(f"n-gram block without a vocabulary selection in {type(part).__name__}")
                union_rows, union_columns, unique = counts[analyser]
                matrix = sp.csr_matrix(  # duplicates summed: integer counts
                    (np.ones(len(union_rows), dtype=np.float32), (union_rows, union_columns)),
                    shape=(len(unique), len(selection)),
                )
                matrix.sort_indices()
                order = [unique[doc] for doc in normalised[head.norm_key]]
                rows = matrix if order == list(range(matrix.shape[0])) else matrix[order]
                cols = selection[rows.indices]
                keep = cols >= 0
                row_of = np.repeat(np.arange(len(texts)), np.diff(rows.indptr))
                indptr = np.zeros(len(texts) + 1, dtype=np.int64)
                np.cumsum(np.bincount(row_of[keep], minlength=len(texts)), out=indptr[1:])
                local = sp.csr_matrix(
                    (rows.data[keep].astype(part.dtype), cols[keep], indptr),
                    shape=(len(texts), len(part.vocabulary_)),
                )  # this model's columns of the counts (distinct union terms are distinct columns)
                local.sort_indices()
                blocks.append(_tfidf(part, local))
            out.append(np.asarray(head.proba(blocks), dtype=np.float64))
        return out

    def _sentences(self, normalised: dict[tuple, list[str]]) -> dict[tuple, np.ndarray]:
        users = [h for h in self.heads if h.shared and any(kind == "sentence" for kind, _ in h.blocks)]
        if not users:
            return {}
        table = self._table
        if table is None:  # the process's one table (load_table): found once, not per batch
            table = next(part for kind, part in users[0].blocks if kind == "sentence").table()
            for head in users[1:]:
                next(part for kind, part in head.blocks if kind == "sentence").table()  # same representation, or refuse
            self._table = table
        wanted = {h.norm_key for h in users}
        index: dict[str, int] = {}
        for key in wanted:
            for doc in normalised[key]:
                index.setdefault(doc, len(index))
        vectors = table.encode(list(index))
        return {key: vectors[[index[t] for t in normalised[key]]] for key in wanted}


def _tfidf(part: TfidfVectorizer, counts: sp.csr_matrix) -> sp.csr_matrix:
    """``part._tfidf.transform(counts, copy=False)`` without its input validation (same arithmetic, in place)."""
    weighting = part._tfidf
    if weighting.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1.0
    if hasattr(weighting, "idf_"):
        counts.data *= weighting.idf_[counts.indices]
    if weighting.norm == "l2":
        inplace_csr_row_normalize_l2(counts)
    elif weighting.norm is not None:
        counts = normalize(counts, norm=weighting.norm, copy=False)
    return counts


def _direct_scores(head: _Head, direct: dict[str, Any], counts: dict[int, Any], docs: list[str]) -> np.ndarray:
    """``hstack(tfidf blocks) @ weights`` of one head, built from the n-gram occurrences with numpy.

    The same float32 arithmetic as the matrix path (CountVectorizer counts, ``_tfidf``, scipy's
    sparse-times-dense product) on the same entries in the same order: one sort of the head's
    (text, column) keys gives the counts and scikit-learn's sorted column order, each block's
    row norm is summed in float64 in that order as ``inplace_csr_row_normalize_l2`` does, and
    scipy's own ``csr_matvec(s)`` kernel sums the products in float32 in that order.
    """
    mine: dict[str, int] = {}  # this head's distinct texts -> its rows
    for doc in docs:
        mine.setdefault(doc, len(mine))
    n_rows = len(mine)
    width = direct["width"]
    # (text, column) keys in 32 bits while they fit: half the memory to sort
    key_type = np.int32 if (n_rows + 1) * width < 2**31 else np.int64
    keys = []
    for selection, analyser, offset in zip(head.columns, head.keys, direct["offsets"], strict=False):
        if selection is None or analyser is None:  # every n-gram block has both
            raise RuntimeError("n-gram block without a vocabulary selection")
        rows, columns, unique = counts[analyser]  # rows: the analyser's distinct texts (of every normaliser)
        row_of = np.full(len(unique), -1, dtype=key_type)
        for doc, row in mine.items():
            row_of[unique[doc]] = row
        rows = row_of[rows]
        local = selection[columns].astype(key_type, copy=False)
        keep = local >= 0
        if len(mine) < len(unique):  # texts of another normaliser only
            keep &= rows >= 0
        rows, local = rows[keep], local[keep]
        rows *= width
        local += key_type(offset)
        local += rows
        keys.append(local)
    entries, found = np.unique(np.concatenate(keys), return_counts=True)
    rows, columns = np.divmod(entries, width)
    values = np.log(found.astype(np.float32))
    values += np.float32(1.0)
    values *= direct["idf"][columns]
    segment = rows * len(direct["offsets"])  # (text, block): one l2 norm each
    for start in direct["offsets"][1:]:  # a column's block, from the blocks' first columns
        segment += columns >= start
    norms = np.sqrt(np.bincount(segment, weights=(values * values).astype(np.float64)))
    values = (values / norms[segment]).astype(np.float32)
    indptr = np.zeros(n_rows + 1, dtype=columns.dtype)  # scipy's kernels take one index type
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    weights = direct["weights"]
    n_labels = weights.shape[1]
    scores = np.zeros((n_rows, n_labels), dtype=np.float32)
    if n_labels == 1:  # scipy multiplies by a one-column matrix as by a vector
        csr_matvec(n_rows, weights.shape[0], indptr, columns, values, weights.ravel(), scores.ravel())
    else:
        csr_matvecs(n_rows, weights.shape[0], n_labels, indptr, columns, values, weights.ravel(), scores.ravel())
    return scores[[mine[doc] for doc in docs]]


def _targets(selection: np.ndarray | None, offset: int, width: int) -> np.ndarray:
    """A block's union column -> the head's column of its stacked n-gram matrix (``offset`` on), or ``width``
    (its zero idf and weight row) for a term not in the head's vocabulary, in the kernels' index type."""
    if selection is None:  # every n-gram block has one
        raise RuntimeError("n-gram block without a vocabulary selection")
    index_type = np.int32 if width < 2**31 - 1 else np.int64
    return np.where(selection >= 0, selection.astype(np.int64) + int(offset), width).astype(index_type)


def _increasing(selection: np.ndarray | None) -> bool:
    """A block's union column -> model column map keeps the union's order (the model's columns are its
    terms in sorted order, as scikit-learn numbers them, and so are the union's)."""
    if selection is None:
        return False
    chosen = selection[selection >= 0]
    return bool((chosen[1:] > chosen[:-1]).all())


def _distinct_counts(occurrences: tuple[np.ndarray, np.ndarray, dict[str, int]], width: int) -> tuple[Any, ...]:
    """An analyser's n-gram occurrences (text, union column; ``width``: the unknown column) as each
    text's distinct known n-grams in union column order: (their texts, union columns, sublinear tf
    ``1 + log(count)`` in float32, the number of entries of each text, their row pointers). One sort for
    every head that reads the analyser."""
    rows, columns, unique = occurrences
    key_type = np.int32 if (len(unique) + 1) * width < 2**31 else np.int64
    known = columns < width
    keys: Any = rows[known].astype(key_type)
    keys *= key_type(width)
    keys += columns[known]
    entries, found = np.unique(keys, return_counts=True)
    texts, column = np.divmod(entries, key_type(width))
    tf = np.log(found.astype(np.float32))
    tf += np.float32(1.0)
    per_text = np.bincount(texts, minlength=len(unique))
    indptr = np.zeros(len(unique) + 1, dtype=np.int64)
    np.cumsum(per_text, out=indptr[1:])
    return texts, column, tf, per_text, indptr


def _ordered_scores(
    head: _Head, direct: dict[str, Any], counts: dict[int, Any], distinct: dict[int, Any], docs: list[str]
) -> np.ndarray:
    """:func:`_direct_scores` from the analysers' distinct n-grams (:func:`_distinct_counts`) instead of a
    sort of the head's own, for a head whose columns keep the union's order (``direct["ordered"]``).

    Every text of the analyser is scored (a row's score depends on its own entries only) and the
    head's texts are picked after. A block's entries of a text are already in the head's column
    order, so each block's l2 norm sums the same values in the same order as the sort's, and
    scipy's kernel, which adds to the scores it is given, run block after block adds each text's
    products in the order of the text's row of the stacked matrix: the same floats. The entries of
    n-grams that are not the head's are not dropped (a pass over every array) but sent to the zero
    column past the head's (:func:`_targets`): their values are +0.0, and adding +0.0 to a sum of
    positive squares, or to a score (which starts at +0.0 and so is never -0.0), leaves its bits."""
    n_texts = 0
    scores: np.ndarray | None = None
    rows_of: dict[str, int] = {}  # the texts' rows (the same in every block)
    weights = direct["weights"]
    n_labels = weights.shape[1]
    for target, analyser in zip(direct["targets"], head.keys, strict=False):
        if analyser is None:  # every n-gram block has one
            raise RuntimeError("n-gram block without an analyser")
        texts, column, tf, per_text, indptr = distinct[analyser]
        unique = counts[analyser][2]
        if scores is None:
            n_texts, rows_of = len(unique), unique
            scores = np.zeros((n_texts, n_labels), dtype=np.float32)
        elif len(unique) != n_texts:  # the caller checks that the head's analysers number the same texts
            raise RuntimeError("n-gram blocks of one head over different texts")
        # (``take``: numpy's gather loop; an index array goes through its general iterator, ~3x the instructions)
        local = target.take(column)  # every entry kept: one not in this head's vocabulary reads the zero column
        values = tf * direct["idf"].take(local)  # 0 there, and a 0 adds nothing to a norm or a score (see above)
        norms = np.sqrt(np.bincount(texts, weights=(values * values).astype(np.float64), minlength=n_texts))
        norms[norms == 0.0] = 1.0  # a text none of whose n-grams are the head's: its values are all 0
        values = (values / np.repeat(norms, per_text)).astype(np.float32)  # norms[texts]: texts are sorted
        indptr = indptr.astype(local.dtype, copy=False)  # scipy's kernels take one index type
        if n_labels == 1:  # scipy multiplies by a one-column matrix as by a vector
            csr_matvec(n_texts, weights.shape[0], indptr, local, values, weights.ravel(), scores.ravel())
        else:
            csr_matvecs(n_texts, weights.shape[0], n_labels, indptr, local, values, weights.ravel(), scores.ravel())
    if scores is None:
        raise RuntimeError("a head scored directly without n-gram blocks")
    return scores[[rows_of[doc] for doc in docs]]


def _temperature(head: Any, scores: np.ndarray) -> np.ndarray:
    """A temperature-scaled calibrated head's probabilities from its decision scores."""
    calibrated = head.calibrated_classifiers_[0]
    if scores.ndim == 1 or scores.shape[1] == 1:  # binary: logits (-d, d)
        scores = scores.reshape(-1, 1)
        logits = np.concatenate([-scores, scores], axis=1)
    elif ((scores >= 0) & (scores <= 1)).all() and np.isclose(scores.sum(axis=1), 1.0).all():
        logits = np.log(scores + 1e-12)  # scikit-learn reads such scores as probabilities
    else:
        logits = scores
    proba = softmax(calibrated.calibrators[0].beta_ * logits)
    proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba.astype(np.float64)  # CalibratedClassifierCV averages into a float64 array


def _calibrated(head: Any, X: Any, weights: tuple[Any, np.ndarray] | None) -> np.ndarray:
    """``head.predict_proba(X)``: for one temperature-scaled linear head (``weights``: its coefficients,
    transposed, and intercepts), the same arithmetic without scikit-learn's input validation."""
    if weights is None:
        return head.predict_proba(X)
    coef_t, intercept = weights
    scores = X @ coef_t
    return _temperature(head, (scores.toarray() if sp.issparse(scores) else np.asarray(scores)) + intercept)


def _side_by_side(first: tuple[Any, np.ndarray] | None, second: tuple[Any, np.ndarray] | None) -> Any:
    """Two linear heads' (transposed coefficients, intercepts) over the same columns as one head's (None if
    either is not linear): each score column is summed on its own, so the product gives each head its scores."""
    if first is None or second is None:
        return None
    if isinstance(first[0], np.ndarray) and isinstance(second[0], np.ndarray):
        coef_t: Any = np.ascontiguousarray(np.hstack([first[0], second[0]]))
    else:
        coef_t = sp.hstack([sp.csr_matrix(first[0]), sp.csr_matrix(second[0])], format="csr")
    return coef_t, np.concatenate([first[1], second[1]])


def _linear_weights(head: Any) -> tuple[Any, np.ndarray] | None:
    """A calibrated head's transposed coefficients and intercepts, when :func:`_calibrated` can run it."""
    if not isinstance(head, CalibratedClassifierCV) or len(head.calibrated_classifiers_) != 1:
        return None
    calibrated = head.calibrated_classifiers_[0]
    estimator = calibrated.estimator
    if calibrated.method != "temperature":
        return None
    if isinstance(estimator, PrunedLinear):  # decision_function: (X @ coef_.T).toarray() + intercept_
        coef_t = sp.csr_matrix(estimator.coef_.T)
        if coef_t.shape[0] * coef_t.shape[1] <= DENSE_WEIGHTS:
            # sparse X times dense weights adds the same products in the same order (a pruned weight
            # adds an exact zero), several times faster than a sparse-times-sparse product
            return np.ascontiguousarray(coef_t.toarray()), estimator.intercept_
        return coef_t, estimator.intercept_
    if type(estimator) is RidgeClassifier:  # decision_function: X @ coef_.T + intercept_ (dense X)
        return np.ascontiguousarray(estimator.coef_.T), estimator.intercept_
    return None
