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


# ---------------------------------------------------------------------------------------------------
# Uploaded tables (the app's Evaluate page): bytes -> header and rows, with a clear message for every
# way a file can be wrong, and labels mapped onto a model's labels.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Table:
    """A delimited text file as a header and rows of cells.

    Attributes:
        header: column names. rows: ``[[cell, ...], ...]``, each as long as the header.
        name: the file's name. truncated: more rows than the limit were in the file (the first ones kept).
        total_rows: data rows in the file (before the limit).
    """

    header: list[str]
    rows: list[list[str]]
    name: str
    truncated: bool = False
    total_rows: int = 0

    def column(self, name: str) -> list[str]:
        """Every cell of one column.

        Raises:
            DataError: no such column.
        """
        if name not in self.header:
            raise DataError(f"{self.name}: no column '{name}'; the columns are {self.header}.")
        i = self.header.index(name)
        return [r[i] for r in self.rows]

    def guess(self, candidates: Sequence[str]) -> str | None:
        """The first column whose name is one of ``candidates`` (any case), or None."""
        lower = {c.lower().strip(): c for c in self.header}
        return next((lower[c] for c in candidates if c in lower), None)


def parse_table(raw: bytes, name: str, *, max_bytes: int, max_rows: int) -> Table:
    """Parse an uploaded CSV or TSV file (a header row, then one row per example).

    The delimiter is a tab for ``.tsv``/``.tab`` files, else sniffed from the first lines among comma,
    semicolon and tab. Text must be UTF-8 (a byte-order mark is allowed).

    Args:
        raw: the file's bytes. name: its name (for messages and the delimiter).
        max_bytes: the size limit. max_rows: rows kept (the first ones; ``Table.truncated`` says so).

    Raises:
        DataError: empty, too large, binary, not UTF-8, no header, a header with empty or repeated names,
            rows with too few or too many cells, or no data rows.
    """
    import io

    if not raw or not raw.strip():
        raise DataError(f"{name} is empty.")
    if len(raw) > max_bytes:
        raise DataError(f"{name} is {len(raw) / 1e6:.1f} MB; this server takes files up to {max_bytes / 1e6:.0f} MB "
                        "(PYRAMID_LENS_MAX_UPLOAD_MB).")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{name} is UTF-16 text; save it as CSV with UTF-8 encoding.")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{name} is a binary file (a spreadsheet or an archive?); save it as CSV (UTF-8) first.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text (byte {exc.start} cannot be read): save it as CSV with UTF-8 "
                        "encoding.") from None
    if name.lower().endswith((".tsv", ".tab")):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{name} has no header row.") from None
    except csv.Error as exc:
        raise DataError(f"{name} is not a well-formed CSV file: {exc}.") from None
    if len(header) < 2:
        raise DataError(f"{name} has one column ({header[0]!r}); it needs a text column and a label column, "
                        "with a header row naming them.")
    if any(not h for h in header):
        raise DataError(f"{name}: the header has an empty column name ({header}).")
    if len(set(header)) != len(header):
        raise DataError(f"{name}: the header repeats a column name ({header}).")
    rows, total = [], 0
    try:
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{name}, line {lineno}: {len(row)} cells where the header has {len(header)}; "
                                "is a text cell missing its quotes?")
            total += 1
            if len(rows) < max_rows:
                rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{name} is not a well-formed CSV file: {exc}.") from None
    if not rows:
        raise DataError(f"{name} has a header but no rows.")
    return Table(header, rows, name, truncated=total > len(rows), total_rows=total)


def map_labels(values: Sequence[str], label_names: Sequence[str]) -> tuple[list[int], dict[str, int], list[str]]:
    """Map a label column onto a model's labels: by name (any case, surrounding spaces ignored) or by id
    (``0..C-1``).

    Returns:
        ``(ids, mapping, unmapped)``: the label id of every row (-1 where unmapped), the mapping of every
        distinct value, and the distinct values that map to no label (in order of appearance).
    """
    names = [str(n).strip().lower() for n in label_names]
    mapping: dict[str, int] = {}
    unmapped: list[str] = []
    ids = []
    for v in values:
        key = v.strip()
        if key not in mapping and key not in unmapped:
            low = key.lower()
            if low in names:
                mapping[key] = names.index(low)
            else:
                try:
                    i = int(float(key))
                    ok = float(key) == i and 0 <= i < len(names)
                except ValueError:
                    ok = False
                if ok:
                    mapping[key] = i
                else:
                    unmapped.append(key)
        ids.append(mapping.get(key, -1))
    return ids, mapping, unmapped


def labelled_from_table(table: Table, text_column: str, label_column: str, label_names: Sequence[str]) -> LabelledData:
    """The table's texts and labels for a model with ``label_names``.

    Raises:
        DataError: a missing column, the same column twice, label values that map to no label of the model
            (named, with the model's labels), empty texts only, or a single class (every metric would
            describe that one class).
    """
    if text_column == label_column:
        raise DataError("The text column and the label column must be two different columns.")
    texts = table.column(text_column)
    values = table.column(label_column)
    ids, mapping, unmapped = map_labels(values, label_names)
    if unmapped:
        shown = ", ".join(repr(u) for u in unmapped[:8]) + (f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else "")
        raise DataError(f"Label values that match none of the model's labels: {shown}. The model's labels are "
                        f"{list(label_names)} (ids 0..{len(label_names) - 1}); a value must be one of them (any case) "
                        "or its id.")
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if not keep:
        raise DataError(f"The text column '{text_column}' is empty in every row.")
    classes = {ids[i] for i in keep}
    if len(classes) < 2:
        only = label_names[next(iter(classes))]
        raise DataError(f"Every row has the same label ('{only}'): with one class, accuracy is the recall of that "
                        "class and macro-F1 is meaningless. Evaluate on a file with at least two classes.")
    return LabelledData([_BR.sub(" ", texts[i]) for i in keep], [ids[i] for i in keep], list(label_names), table.name,
                        text_column, label_column)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""Cell starts that spreadsheets read as formulas (OWASP, CSV injection)."""


def spreadsheet_safe(value):
    """A cell value safe to open in a spreadsheet: text that starts like a formula gets a leading ``'`` (the
    usual neutraliser, OWASP); numbers and other values are returned as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
