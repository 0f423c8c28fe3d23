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
from psycopg import pq
from psycopg.adapt import AdaptersMap, Dumper

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no OIDs, no header extension
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
INT4_OID = 23
INT8_OID, TEXT_OID, BYTEA_OID, FLOAT8_OID = 20, 25, 17, 701
#: element type -> array type, for a parameter's declared type
_ARRAY_OIDS = {INT4_OID: 1007, INT8_OID: 1016, TEXT_OID: 1009, BYTEA_OID: 1001,
               FLOAT8_OID: 1022}


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


class ArrayParam:
    """A query parameter that is already an array in array_recv's binary format (built by
    :func:`text_array`, :func:`int_array`, :func:`bytea_array`): psycopg sends its bytes as
    they are (:func:`register_arrays`), where its list dumper takes Python steps per element
    (``bench/merge_deltas.py``)."""

    __slots__ = ("data", "oid")

    def __init__(self, data: bytes, element_oid: int) -> None:
        self.data, self.oid = data, _ARRAY_OIDS[element_oid]


def _dumper(array_oid: int) -> type[Dumper]:
    class ArrayDumper(Dumper):
        format = pq.Format.BINARY
        oid = array_oid

        def dump(self, obj: ArrayParam) -> bytes:
            return obj.data

    return ArrayDumper


class TextArray(ArrayParam):
    __slots__ = ()


class Int4Array(ArrayParam):
    __slots__ = ()


class Int8Array(ArrayParam):
    __slots__ = ()


class ByteaArray(ArrayParam):
    __slots__ = ()


class Float8Array(ArrayParam):
    __slots__ = ()


_DUMPERS = {cls: _dumper(_ARRAY_OIDS[oid]) for cls, oid in (
    (TextArray, TEXT_OID), (Int4Array, INT4_OID), (Int8Array, INT8_OID), (ByteaArray, BYTEA_OID),
    (Float8Array, FLOAT8_OID))}


def register_arrays(adapters: AdaptersMap) -> None:
    """Let a cursor (its ``adapters``) send :class:`ArrayParam` values (pass them as ``%(x)b``)."""
    for cls, dumper in _DUMPERS.items():
        adapters.register_dumper(cls, dumper)


def _array(element_oid: int, parts: Sequence[bytes], lengths: np.ndarray) -> bytes:
    """One-dimensional array of ``parts`` (their ``lengths``; -1: NULL) in array_recv's format:
    dimensions, has-NULL flag, element type, size and lower bound, then per element its length
    word and bytes (an empty array has no dimension)."""
    n = len(parts)
    if not n:
        return struct.pack(">iii", 0, 0, element_oid)
    grid = np.empty((n, 2), dtype=object)
    grid[:, 0] = length_words(lengths)
    grid[:, 1] = parts
    head = struct.pack(">iiiii", 1, int(bool((lengths < 0).any())), element_oid, n, 1)
    return b"".join([head, *grid.ravel().tolist()])


def text_array(values: list) -> TextArray:
    """``text[]`` of ``values`` (``str`` of a non-str, NULL for None).

    >>> t = text_array(["ab", None]).data  # 1 dimension, has NULL, text, 2 elements from 1
    >>> t[:20].hex(), t[20:].hex()
    ('0000000100000001000000190000000200000001', '000000026162ffffffff')
    """
    parts, lengths = text_pieces(values)
    return TextArray(_array(TEXT_OID, parts, lengths), TEXT_OID)


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    """``bytea[]`` of ``values``."""
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    return ByteaArray(_array(BYTEA_OID, values, lengths), BYTEA_OID)


def int_array(values: Sequence[int], element_oid: int = INT8_OID) -> ArrayParam:
    """``bigint[]`` (or ``int[]``) of ``values``, no NULL: one numpy structured array of length
    words and big-endian values. Values are cast: check a range first (:func:`check_int32`)."""
    n = len(values)
    if not n:
        data = struct.pack(">iii", 0, 0, element_oid)
    else:
        width = 8 if element_oid == INT8_OID else 4
        rows = np.empty(n, dtype=[("len", ">i4"), ("v", f">i{width}")])
        rows["len"] = width
        rows["v"] = values
        data = struct.pack(">iiiii", 1, 0, element_oid, n, 1) + rows.tobytes()
    return (Int8Array if element_oid == INT8_OID else Int4Array)(data, element_oid)


def float_array(values: Sequence[float | None]) -> Float8Array:
    """``double precision[]`` of ``values``, NULL for None (and for NaN): each float's 8 bytes
    as they are (no decimal text for the server to parse, so every value arrives bit for bit).

    >>> f = float_array([0.5, None]).data  # 1 dimension, has NULL, float8, 2 elements from 1
    >>> f[:20].hex(), f[20:].hex()
    ('0000000100000001000002bd0000000200000001', '000000083fe0000000000000ffffffff')
    """
    numbers = np.array(values, ">f8")  # None becomes NaN: a NaN is a NULL (none is sent)
    nulls = np.isnan(numbers)
    parts = numbers.view("V8").tolist()
    lengths = np.where(nulls, -1, 8)
    if nulls.any():
        parts = [b"" if null else p for p, null in zip(parts, nulls.tolist())]
    return Float8Array(_array(FLOAT8_OID, parts, lengths), FLOAT8_OID)
