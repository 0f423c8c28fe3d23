"""PostgreSQL's binary COPY format (``COPY ... FROM STDIN (FORMAT BINARY)``), built from numpy
columns without a Python step per value: a row is a 16-bit field count, then per field a 32-bit
length (-1 for NULL) and the value's big-endian bytes; the stream opens with :data:`SIGNATURE`
and ends with :data:`TRAILER`.

A table's row is assembled from a few *pieces*, each a ``bytes`` per row, joined once
(:func:`join_rows`): the fixed-width fields of every row as one numpy structured array
(:func:`fixed_pieces`, one ``bytes`` per row from its ``tolist``), text columns as one encode of
the whole column (:func:`text_pieces`), and values repeated across rows (a model name, an array of
slice ids) as the bytes of each distinct value (:func:`text_field`, :func:`int4_array_field`)
picked per row by a factorized code. COPY text needed a ``repr`` or ``str`` and a join per
value instead (``bench/predictions_copy.py``).

>>> import numpy as np
>>> rows = fixed_pieces(2, [(np.array([7, -1]), ">i8", None),
...                         (np.array([True, False]), "?", np.array([False, True]))])
>>> [r.hex() for r in rows]  # count 2; length 8, 7; length 1, true | -1 (8 bytes); NULL
['00020000000800000000000000070000000101', '000200000008ffffffffffffffffffffffff']
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no OIDs, no header extension
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
INT4_OID = 23


def fixed_pieces(field_count: int | None,
                 columns: Sequence[tuple[np.ndarray, str, np.ndarray | None]],
                 trailing_length: np.ndarray | None = None) -> list[bytes]:
    """Per row, the bytes of the field count (unless None) and of each fixed-width column
    ``(values, big-endian dtype, NULL mask or None)``: length word and value, or the NULL length
    word alone; ``trailing_length`` ends each row with the length word of the (variable-width)
    field that follows. Built as one numpy structured array; only a row with a NULL is cut by
    Python. Values are cast, not checked: an integer out of the type's range wraps (see
    :func:`check_int32`)."""
    layout: list[tuple[str, str]] = [] if field_count is None else [("count", ">i2")]
    for j, (_, dtype, _) in enumerate(columns):
        layout += [(f"len{j}", ">i4"), (f"v{j}", dtype)]
    if trailing_length is not None:
        layout.append(("trailing", ">i4"))
    n = len(columns[0][0]) if columns else len(trailing_length)
    rows = np.empty(n, dtype=np.dtype(layout))  # packed: no padding between fields
    if field_count is not None:
        rows["count"] = field_count
    cuts = []
    for j, (values, dtype, nulls) in enumerate(columns):
        rows[f"len{j}"] = np.dtype(dtype).itemsize
        with np.errstate(over="ignore"):  # a float beyond float4 becomes infinite
            rows[f"v{j}"] = values
        if nulls is not None and nulls.any():
            rows[f"len{j}"][nulls] = -1
            cuts.append((np.flatnonzero(nulls), rows.dtype.fields[f"v{j}"][1],
                         np.dtype(dtype).itemsize))
    if trailing_length is not None:
        rows["trailing"] = trailing_length
    out = rows.view(f"V{rows.dtype.itemsize}").tolist()
    for idx, offset, width in reversed(cuts):  # from the right: earlier offsets stay valid
        for i in idx.tolist():
            out[i] = out[i][:offset] + out[i][offset + width:]
    return out


def check_int32(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` unchanged, or ValueError when one does not fit PostgreSQL's ``int`` (a cast
    would wrap it silently; COPY text made the server refuse it)."""
    if len(values) and (values.min() < -2**31 or values.max() >= 2**31):
        raise ValueError(f"{name}: a value is out of range for type integer")
    return values


def text_pieces(values: list) -> tuple[list[bytes], np.ndarray]:
    """UTF-8 bytes of each value (``str`` of a non-str, ``b""`` for None) and their lengths as
    length words want them (-1 for None): one join and encode of the column, split again
    (a NUL, which no PostgreSQL text can hold, makes it encode value by value)."""
    nulls = values.count(None)
    texts = values if not nulls else ["" if v is None else v for v in values]
    try:
        parts = "\x00".join(texts).encode().split(b"\x00")
    except TypeError:  # a non-str value
        texts = [v if type(v) is str else str(v) for v in texts]
        parts = "\x00".join(texts).encode().split(b"\x00")
    if len(parts) != len(values):
        parts = [t.encode() for t in texts]
    lengths = np.fromiter(map(len, parts), np.int64, len(parts))
    if nulls:
        lengths[np.fromiter((v is None for v in values), bool, len(values))] = -1
    return parts, lengths


def length_words(lengths: np.ndarray) -> list[bytes]:
    """Each length as the 4 bytes of a field's length word."""
    return np.asarray(lengths).astype(">i4").view("V4").tolist()


def text_field(value: str | None) -> bytes:
    """One text field: length word and UTF-8 bytes (NULL for None)."""
    if value is None:
        return NULL
    data = value.encode()
    return struct.pack(">i", len(data)) + data


def int4_array_field(values: Sequence[int]) -> bytes:
    """One ``int[]`` field in array_recv's format: dimensions, has-NULL flag, element type,
    per dimension its size and lower bound, then per element its length word and value (an
    empty array has no dimension)."""
    k = len(values)
    if not k:
        body = struct.pack(">iii", 0, 0, INT4_OID)
    else:
        body = struct.pack(f">iiiii{2 * k}i", 1, 0, INT4_OID, k, 1,
                           *(x for v in values for x in (4, v)))
    return struct.pack(">i", len(body)) + body


def join_rows(pieces: Sequence[list[bytes]]) -> bytes:
    """The rows whose ``j``-th piece is ``pieces[j][row]``, framed as a whole COPY stream."""
    n = len(pieces[0])
    grid = np.empty((n, len(pieces)), dtype=object)
    for j, column in enumerate(pieces):
        grid[:, j] = column
    return b"".join([SIGNATURE, *grid.ravel().tolist(), TRAILER])
