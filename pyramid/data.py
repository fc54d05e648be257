"""Labelled text files: TSV or CSV with a text column and a label column.

SST-2 (``sentence<TAB>label``, labels 0/1) and the IMDB reviews (``review,sentiment``, labels
``positive``/``negative``, quoted CSV) both load without options; any other file names its columns.
Labels are read as a model's label names or ids (``label_names``: the classifier's labels), or, without
them, inferred from the file (integer ids, or the distinct words in sorted order).
"""

from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass
from typing import Sequence

TEXT_COLUMNS = ("sentence", "text", "review", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "labels", "target", "class")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


class DataError(ValueError):
    """A data file is missing, unreadable, lacks the columns asked for, or holds unknown labels."""


@dataclass
class LabelledData:
    """Texts and integer labels read from one file.

    Attributes:
        texts: the texts, ``<br />`` tags replaced by spaces (IMDB ships them).
        labels: label ids, ``0 <= label < len(label_names)``.
        label_names: names of the label ids (from the model head).
        path, text_column, label_column: where they came from.
    """

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    path: str
    text_column: str
    label_column: str

    def __len__(self) -> int:
        return len(self.texts)

    def with_labels(self, label_names: Sequence[str]) -> "LabelledData":
        """The same rows for a model with ``label_names``.

        Raises:
            DataError: the names differ from the ones the labels were read with.
        """
        if [n.lower() for n in label_names] != [n.lower() for n in self.label_names]:
            raise DataError(f"{self.path}: labels were read as {self.label_names}, the model has {list(label_names)}")
        return self

    def head(self, limit: int | None) -> "LabelledData":
        """The first ``limit`` rows (all when None)."""
        if limit is None:
            return self
        return LabelledData(self.texts[:limit], self.labels[:limit], self.label_names, self.path,
                            self.text_column, self.label_column)


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column '{wanted}'; the columns are {list(columns)}.")
        return wanted
    lower = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise DataError(
        f"{path}: cannot tell which column holds the {what} (columns {list(columns)}); "
        f"pass --{what}-column."
    )


def parse_label(value: str, label_names: Sequence[str]) -> int:
    """A label cell -> label id: an integer id, or a label name in any case.

    Raises:
        DataError: the value is neither.
    """
    v = value.strip()
    names = [n.lower() for n in label_names]
    if v.lower() in names:
        return names.index(v.lower())
    try:
        i = int(float(v))
    except ValueError:
        raise DataError(f"unknown label '{value}' (expected 0..{len(names) - 1} or one of {list(label_names)})") from None
    if not 0 <= i < len(names):
        raise DataError(f"label {i} out of range 0..{len(names) - 1}")
    return i


def infer_label_names(values: Sequence[str]) -> list[str]:
    """Label names for label cells read without a model: integer ids ``0..K-1`` give ``["0", .., "K-1"]``
    (K = the largest id + 1), anything else the distinct values in sorted order (case-insensitive; the first
    spelling seen).

    Raises:
        DataError: negative integer ids.
    """
    cells = [v.strip() for v in values if v.strip()]
    try:
        ids = [int(float(v)) for v in cells]
    except ValueError:
        seen: dict[str, str] = {}
        for v in cells:
            seen.setdefault(v.lower(), v)
        return [seen[k] for k in sorted(seen)]
    if any(i < 0 for i in ids):
        raise DataError("negative label ids")
    return [str(i) for i in range(max(ids, default=0) + 1)]


def read_labelled(
    path: str,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
) -> LabelledData:
    """Read a TSV (``.tsv``, unquoted, as GLUE ships SST-2) or CSV (quoted) file with a header row.

    Args:
        path: the file.
        text_column, label_column: column names; guessed from common names when None.
        label_names: the model's label names (ids index them; cells may hold a name or an id); None to
            infer them from the file (:func:`infer_label_names`).

    Raises:
        DataError: missing file, no header, unknown columns, bad labels, or no rows.
    """
    if not os.path.isfile(path):
        raise DataError(f"data file '{path}' does not exist.")
    tsv = path.lower().endswith((".tsv", ".tab"))
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="", encoding="utf-8") as f:
        if tsv:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty.") from None
        tcol = _pick(header, text_column, TEXT_COLUMNS, "text", path)
        lcol = _pick(header, label_column, LABEL_COLUMNS, "label", path)
        ti, li = header.index(tcol), header.index(lcol)
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(ti, li):
                raise DataError(f"{path}, row {lineno}: {len(row)} fields, expected {len(header)}.")
            rows.append((lineno, row[ti], row[li]))
    if not rows:
        raise DataError(f"{path} has a header but no rows.")
    if label_names is None:
        try:
            label_names = infer_label_names([cell for _, _, cell in rows])
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
    texts, labels = [], []
    for lineno, text, cell in rows:
        try:
            labels.append(parse_label(cell, label_names))
        except DataError as exc:
            raise DataError(f"{path}, row {lineno}: {exc}") from None
        texts.append(_BR.sub(" ", text))
    return LabelledData(texts, labels, list(label_names), path, tcol, lcol)


def read_texts(path: str, text_column: str | None = None) -> list[str]:
    """Only the texts of a TSV/CSV file with a header (labels, if any, are ignored); ``<br />`` removed.

    Raises:
        DataError: missing file, no header, unknown text column, or no rows.
    """
    if not os.path.isfile(path):
        raise DataError(f"data file '{path}' does not exist.")
    tsv = path.lower().endswith((".tsv", ".tab"))
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty.") from None
        ti = header.index(_pick(header, text_column, TEXT_COLUMNS, "text", path))
        texts = [_BR.sub(" ", row[ti]) for row in reader if len(row) > ti and row[ti].strip()]
    if not texts:
        raise DataError(f"{path} has a header but no rows.")
    return texts
