"""monitor.store.findings: the binary-array upsert stores what one statement per row stored."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from sqlalchemy import text

from monitor.contract import Finding, Severity, Status, finite_or_none
from monitor.store import copy_binary as cb
from monitor.store.findings import _UPSERT, keep_only, labels_settled, revisions, upsert_findings
from monitor.store.keys import WindowKey

pytestmark = pytest.mark.integration

#: the statement upsert_findings sent once per row before (14f1ea8), as the reference: the
#: values as text parameters, the same conflict clause
_PER_ROW = (
    "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
    "window_start_ms, window_end_ms, subject, status, severity, test, score, threshold, "
    "p_value, n, details, revision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, CAST(%s AS jsonb), 1)" + _UPSERT[_UPSERT.index(" ON CONFLICT"):])

_COLUMNS = ("detector, detector_version, model, model_version, slice, window_start_ms, "
            "window_end_ms, subject, status, severity, test, score, threshold, p_value, n, "
            "details::text, revision")


def _per_row(conn, rows) -> None:
    with conn.connection.driver_connection.cursor() as cur:
        for k, end, f in rows:
            cur.execute(_PER_ROW, (
                f.detector, f.detector_version, k.model, k.model_version, k.slice,
                k.window_start_ms, end, f.subject, f.status.value, f.severity.value, f.test,
                finite_or_none(f.score), finite_or_none(f.threshold), finite_or_none(f.p_value),
                int(f.n), orjson.dumps(f.details, option=orjson.OPT_SERIALIZE_NUMPY).decode()))


def _stored(conn) -> list[tuple]:
    return [tuple(r) for r in conn.execute(text(
        f"SELECT {_COLUMNS} FROM findings ORDER BY detector, model, model_version, slice, "
        "window_start_ms, subject")).all()]


def _rows() -> list[tuple[WindowKey, int, Finding]]:
    """Findings with every awkward value: non-finite and missing numbers, -0.0, subnormals,
    shortest-repr and 17-digit floats, numpy scalars and arrays in details, text with quotes,
    backslashes, an escape-like text and non-ASCII; one key twice (its revision counts twice)."""
    a = WindowKey("feature_drift", "vit", "v1", "all", 0)
    b = WindowKey("feature_drift", "vit", "v1", "camera_id=ü'\\x", 300_000)
    c = WindowKey("embedding_drift", "vit", "v1", "all", 0)
    scores = [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, math.nan, math.inf, None,
              float(np.float32(0.1)), 1 / 3]
    out = []
    for i, score in enumerate(scores):
        key = (a, b, c)[i % 3]
        out.append((key, key.window_start_ms + 300_000, Finding(
            key.detector, 3, (Status.OK, Status.ALERT, Status.WARN)[i % 3], score=score,
            threshold=(-math.inf if i % 2 else 2.5e-8), p_value=None if i % 4 == 0 else 1e-300,
            severity=Severity.TICKET if i % 3 == 1 else Severity.NONE, n=np.int64(2**40 + i),
            subject=f"feature \"{i}\" é" if i else "", test="ks",
            details={"alpha": 0.01, "x": np.float64(0.1) * 3, "arr": np.arange(3) / 7,
                     "text": "back\\slash \"q\" \\u0000", "nested": {"k": [1, 2.5, None, "s"]}})))
    out.append(out[0])  # the same key and subject again: revision 2, in order
    return out


def test_upsert_stores_what_a_statement_per_row_stored(migrated_engine):
    rows = _rows()
    with migrated_engine.connect() as conn:
        with conn.begin() as trans:
            _per_row(conn, rows)
            _per_row(conn, rows[1:4])  # an update of existing rows too
            want = _stored(conn)
            trans.rollback()
        with conn.begin() as trans:
            upsert_findings(conn, rows)
            upsert_findings(conn, rows[1:4])
            got = _stored(conn)
            trans.rollback()
    assert got == want
    assert {r[-1] for r in got} == {1, 2}  # the repeated key and the updated ones
    assert any(r[11] is None for r in got) and any(r[13] is None for r in got)


def test_a_key_twice_in_one_call_counts_its_revision_twice_and_keeps_the_last(migrated_engine):
    key = WindowKey("traffic", "vit", "v1", "all", 0)
    first = Finding("traffic", 1, Status.OK, score=1.0, n=10)
    second = Finding("traffic", 1, Status.ALERT, score=2.0, n=11)
    with migrated_engine.connect() as conn, conn.begin() as trans:
        upsert_findings(conn, [(key, 300_000, first), (key, 300_000, second)])
        assert revisions(conn, [key]) == {key: 2}
        row = conn.execute(text("SELECT status, score, n FROM findings "
                                "WHERE detector = 'traffic'")).one()
        assert tuple(row) == ("alert", 2.0, 11)
        trans.rollback()


def test_key_queries_with_binary_arrays(migrated_engine):
    a = WindowKey("performance", "vit", "v1", "all", 0)
    b = WindowKey("performance", "vit", "v1", "region=eu", 0)
    settled = Finding("performance", 1, Status.OK, n=5, details={"labels_settled": True})
    other = Finding("performance", 1, Status.OK, n=5, subject="class 3")
    with migrated_engine.connect() as conn, conn.begin() as trans:
        upsert_findings(conn, [(a, 300_000, settled), (a, 300_000, other),
                               (b, 300_000, Finding("performance", 1, Status.OK, n=5))])
        assert revisions(conn, [a, b]) == {a: 1, b: 1}
        assert revisions(conn, [a, b], subject="class 3") == {a: 1}
        assert labels_settled(conn, [a, b]) == {a}
        keep_only(conn, [(a, settled)])  # "class 3" is no longer reported
        assert revisions(conn, [a], subject="class 3") == {}
        assert revisions(conn, [a]) == {a: 1}
        trans.rollback()


def test_float_array_sends_each_double_bit_for_bit():
    values = [0.1, -0.0, 5e-324, None, 1e308, -2.5]
    data = cb.float_array(values).data
    head, body = data[:20], data[20:]
    assert head == bytes.fromhex("0000000100000001000002bd0000000600000001")
    at, out = 0, []
    for _ in values:
        n = int.from_bytes(body[at:at + 4], "big", signed=True)
        out.append(None if n < 0 else np.frombuffer(body[at + 4:at + 12], ">f8")[0])
        at += 4 + max(n, 0)
    assert at == len(body)
    assert [None if v is None else float(v).hex() for v in out] == \
        [None if v is None else v.hex() for v in values]
