"""Labelled text files: JSONL (the ../shared/datasets format) or CSV.

JSONL: one object per line with ``text``, ``label`` (a string; a JSON whole number or true / false is read
as its text, ``"1"`` / ``"true"``) and optionally ``split``
(train / val / test) and ``weight``. A row without ``weight`` but with ``votes``
(label → number of annotators who chose it, as in the Davidson file) is weighted
by annotator agreement: the share of votes its label got. CSV: a header row with
``text`` and ``label`` columns, optionally ``split`` and ``weight``. Errors name
the file and line. A row whose text is empty (or only spaces) is left out, and the dataset
says which lines (``empty_lines``); labels and split names are read without surrounding spaces,
split names in any case.

:func:`with_splits` makes sure train, val and test exist: a file without a test
split gets a stratified 20 % test carved out, one without val gets a stratified
val carved out of train, both deterministic (seeded) and group-aware (texts identical
after NFKC, case folding and whitespace collapsing always land in the same split). Carving
always leaves at least ``KEEP_PER_LABEL`` distinct texts of each label behind, so a rare label
is not carved out of training altogether.

:meth:`Dataset.overlaps` finds what makes figures misleading in a team's own splits: test (or val) rows
whose text, compared the same way, is also a training row's (a model that memorises gets them right),
and texts labelled two ways (no model can get both right).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from classifiers.errors import DatasetError

SPLITS = ("train", "val", "test")
#: Distinct texts of a label that carving always leaves behind: a label with 3 rows keeps 2 for training
#: (the fewest that can be trained and calibrated, over 2 folds) and gives 1 to test, none to val.
KEEP_PER_LABEL = 2
#: Line numbers of empty-text rows named in the note that says they were left out.
EMPTY_LINES_SHOWN = 5
#: Texts labelled two ways quoted in the note that names them (the count is always given).
CONFLICTS_SHOWN = 3
#: Characters of a quoted text in a note.
QUOTED_CHARS = 60
#: Share of a split's rows sharing a text with an earlier split from which a note says so (below it the
#: counts are still reported: CLINC150's 2 of 5,500 test rows move no figure).
SHARED_NOTE_SHARE = 0.005


def text_key(text: str) -> str:
    """A text as the models cannot tell it apart: NFKC, case folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class Overlaps:
    """Rows shared between splits and texts labelled two ways (:meth:`Dataset.overlaps`)."""

    #: split -> (its rows whose text is also a row of an earlier split (val: train; test: train or val), its rows)
    shared: dict[str, tuple[int, int]]
    #: texts with more than one label: (the first row's text, its labels sorted), in file order
    conflicting: list[tuple[str, list[str]]]

    def notes(self, splits: tuple[str, ...] = ("val", "test")) -> list[str]:
        """The overlaps as people read them, one note each ([] when there are none); shared rows of ``splits``."""
        out = []
        for split, (n, rows) in self.shared.items():
            if split in splits and n and n / rows >= SHARED_NOTE_SHARE:
                earlier, so = (
                    ("train", "thresholds chosen on val may be too low for new text")
                    if split == "val"
                    else ("train or val", "the test figures may be optimistic")
                )
                out.append(
                    f"{n} of {rows} {split} rows ({n / rows:.1%}) have the text of a {earlier} row (compared "
                    f"ignoring case, width and spacing): a model that memorises gets them right, so {so} (leave "
                    "out the file's split column and the splits are carved with each text in one split)"
                )
        if self.conflicting:
            quoted = "; ".join(
                f"{_quote(text)} as {' and '.join(labels)}" for text, labels in self.conflicting[:CONFLICTS_SHOWN]
            )
            n = len(self.conflicting)
            more = f"; … ({n - CONFLICTS_SHOWN} more)" if n > CONFLICTS_SHOWN else ""
            out.append(
                f"{n} text{'s' * (n != 1)} {'are' if n != 1 else 'is'} labelled more than one way, so no model "
                f"gets every row of {'them' if n != 1 else 'it'} right: {quoted}{more}"
            )
        return out


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= QUOTED_CHARS else flat[: QUOTED_CHARS - 1] + "…")


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    split: str | None = None
    weight: float = 1.0


@dataclass
class Dataset:
    path: str
    sha256: str
    examples: list[Example]
    carved: dict[str, str] = field(default_factory=dict)
    #: the file's label -> the label it is read as (a spam file's 1 / 0 read as spam / ham), when renamed
    relabelled: dict[str, str] = field(default_factory=dict)
    #: lines of rows left out because their text is empty (an image or sticker exported without a caption)
    empty_lines: list[int] = field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    def texts(self, name: str) -> list[str]:
        return [e.text for e in self.split(name)]

    def labels(self, name: str) -> list[str]:
        return [e.label for e in self.split(name)]

    @property
    def label_set(self) -> list[str]:
        return sorted({e.label for e in self.examples})

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for e in self.examples:
            out[e.split or "unsplit"][e.label] += 1
        return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}

    def describe(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "rows": len(self.examples),
            "counts": self.counts(),
            "carved": self.carved,
            "relabelled": self.relabelled,
        }

    def empty_text(self) -> str:
        """The rows left out for an empty text, as people read it ('' when none)."""
        if not self.empty_lines:
            return ""
        n, shown = len(self.empty_lines), ", ".join(str(line) for line in self.empty_lines[:EMPTY_LINES_SHOWN])
        more = f", … ({n - EMPTY_LINES_SHOWN} more)" if n > EMPTY_LINES_SHOWN else ""
        return f"left out {n} row{'s' * (n != 1)} with an empty text ({Path(self.path).name} line{'s' * (n != 1)} {shown}{more})"

    def overlaps(self) -> Overlaps:
        """Val rows sharing a text with train, test rows sharing one with train or val, and texts with two labels."""
        keys = [text_key(e.text) for e in self.examples]
        first: dict[str, Example] = {}
        labels: dict[str, set[str]] = defaultdict(set)
        seen_in: dict[str, set[str | None]] = defaultdict(set)
        for key, e in zip(keys, self.examples, strict=True):
            first.setdefault(key, e)
            labels[key].add(e.label)
            seen_in[key].add(e.split)
        earlier = {"val": {"train"}, "test": {"train", "val"}}
        shared: dict[str, tuple[int, int]] = {}
        for split, before in earlier.items():
            rows = [key for key, e in zip(keys, self.examples, strict=True) if e.split == split]
            if rows:
                shared[split] = (sum(1 for key in rows if seen_in[key] & before), len(rows))
        conflicting = [(first[k].text, sorted(found)) for k, found in labels.items() if len(found) > 1]
        return Overlaps(shared=shared, conflicting=conflicting)

    def relabelled_text(self) -> str:
        """The renaming as people read it: ``'1' read as spam, '0' read as ham`` ('' when none)."""
        return relabelling_text(self.relabelled)


def relabelling_text(relabelled: dict[str, str]) -> str:
    """A label renaming (file label -> label read as) as people read it: ``'1' read as spam, '0' read as ham``."""
    by_new_label = sorted(relabelled.items(), key=lambda item: item[1], reverse=True)
    return ", ".join(f"{old!r} read as {new}" for old, new in by_new_label)


def _row(obj: object, path: Path, line: int) -> Example:
    if not isinstance(obj, dict):
        raise DatasetError(path, "each row must be an object with text and label", line)
    text, label = obj.get("text"), obj.get("label")
    if not isinstance(text, str):
        raise DatasetError(path, "field 'text' must be a string", line)
    if isinstance(label, bool):  # JSON true / false, as exported public sets write a binary label
        label = "true" if label else "false"
    elif isinstance(label, int):  # JSON 1 / 0: the same label as the text "1" / "0" in a CSV
        label = str(label)
    if isinstance(label, str):
        label = label.strip()  # a spreadsheet's "spam " is the label spam
    if not isinstance(label, str) or not label:
        raise DatasetError(path, "field 'label' must be a non-empty string or a whole number", line)
    split = obj.get("split") or None
    if isinstance(split, str):
        split = split.strip().lower() or None  # Train, TEST as spreadsheets write them
    if split is not None and split not in SPLITS:
        raise DatasetError(path, f"field 'split' is {split!r}; expected one of {list(SPLITS)}", line)
    weight = obj.get("weight", 1.0)
    try:
        weight = float(weight if weight not in (None, "") else 1.0)
    except (TypeError, ValueError) as exc:
        raise DatasetError(path, f"field 'weight' is not a number: {weight!r}", line) from exc
    votes = obj.get("votes")
    if "weight" not in obj and isinstance(votes, dict) and votes:
        # annotator agreement: the share of annotators who chose this row's label
        try:
            total = sum(float(v) for v in votes.values())
            weight = float(votes.get(label, 0)) / total if total > 0 else 1.0
        except (TypeError, ValueError) as exc:
            raise DatasetError(path, "field 'votes' must map labels to counts", line) from exc
        weight = max(weight, 0.05)
    return Example(text=text, label=label, split=split, weight=weight)


def read_dataset(path: Path | str) -> Dataset:
    """Read a JSONL or CSV file of labelled texts."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not valid UTF-8 ({exc.reason})", raw[: exc.start].count(b"\n") + 1) from exc
    rows: list[tuple[int, Example]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content))
        if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
            raise DatasetError(path, f"CSV header must include text and label (found {reader.fieldnames})", 1)
        width = len(reader.fieldnames)
        for row in reader:
            if None in row or None in row.values():
                # an unquoted comma in a text shifts the label into another column: never guess
                fields = width + len(row.get(None) or []) if None in row else sum(v is not None for v in row.values())
                raise DatasetError(
                    path,
                    f"{fields} fields but the header has {width}; put a text that contains commas in double quotes",
                    reader.line_num,
                )
            rows.append((reader.line_num, _row(row, path, reader.line_num)))
    else:
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(path, f"not valid JSON: {exc.msg} at column {exc.colno}", number) from exc
            rows.append((number, _row(obj, path, number)))
    examples = [e for _, e in rows if e.text.strip()]
    empty = [number for number, e in rows if not e.text.strip()]
    if not examples:
        raise DatasetError(path, "holds no rows" + (" with a text" if empty else ""))
    if len({e.label for e in examples}) < 2:
        raise DatasetError(path, "needs at least two distinct labels")
    return Dataset(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), examples=examples, empty_lines=empty)


def carve(examples: list[Example], fraction: float, seed: int, take_as: str) -> list[Example]:
    """Move a stratified, group-aware ``fraction`` of ``examples`` to split ``take_as``."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        # texts the models cannot tell apart (case, width, spacing) stay in one split
        groups[text_key(e.text)].append(i)
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, idx in groups.items():
        majority = Counter(examples[i].label for i in idx).most_common(1)[0][0]
        by_label[majority].append(text)
    chosen: set[int] = set()
    for label in sorted(by_label):
        texts = by_label[label]
        random.Random(f"{seed}:{label}").shuffle(texts)
        n = round(fraction * len(texts))
        if len(texts) > KEEP_PER_LABEL:
            n = max(1, min(n, len(texts) - KEEP_PER_LABEL))
        else:
            n = 0  # too rare to split: every row stays where it is (training needs two of a label)
        for text in texts[:n]:
            chosen.update(groups[text])
    return [replace(e, split=take_as) if i in chosen else e for i, e in enumerate(examples)]


def with_splits(ds: Dataset, *, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 42) -> Dataset:
    """Return ``ds`` with train/val/test all present (carving what is missing)."""
    examples = [e if e.split else replace(e, split="train") for e in ds.examples]
    carved = dict(ds.carved)
    present = {e.split for e in examples}
    if "test" not in present:
        examples = carve(examples, test_fraction, seed, "test")
        carved["test"] = f"stratified {test_fraction:.0%} of all rows, seed {seed}"
    if "val" not in present:
        train = [e for e in examples if e.split == "train"]
        rest = [e for e in examples if e.split != "train"]
        examples = carve(train, val_fraction, seed, "val") + rest
        carved["val"] = f"stratified {val_fraction:.0%} of train, seed {seed}"
    return replace(ds, examples=examples, carved=carved)
