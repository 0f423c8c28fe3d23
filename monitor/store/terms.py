"""The ``prediction_terms`` dictionary: slice names (``camera_id=cam-3``, ``all``) and attribute
pairs (``region=eu``) by a small integer id, so a stored prediction carries two ``int[]``
columns instead of a text list and a JSONB copy of its attributes.

Ids are never reused or changed once committed, so they are cached for the process's life;
ids first seen inside a checkpoint's transaction are kept only once it commits
(:meth:`Terms.committed`): a rolled-back attempt looks them up again. SQL's
``prediction_attrs(attr_ids)`` (migration 0006) turns the ids back into a JSONB object for
readers such as the UI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, text


def attr_term(name: str, value: Any) -> str:
    """``region=eu``: the term of one attribute value (the same text as its slice name)."""
    return f"{name}={value}"


def split_term(term: str) -> tuple[str, str]:
    """``"region=eu"`` -> ``("region", "eu")``."""
    name, _, value = term.partition("=")
    return name, value


class Terms:
    """The id of each term and the term of each id, cached."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pending: dict[str, int] = {}

    def begin(self) -> None:
        """A new transaction: forget ids learnt by an attempt that did not commit."""
        self._pending = {}

    def committed(self) -> None:
        self._ids.update(self._pending)
        self._pending = {}

    def ids(self, conn: Connection, terms: Iterable[str]) -> dict[str, int]:
        """The id of every term, inserting new ones (in sorted order: no deadlocks)."""
        want = set(terms)
        missing = sorted(t for t in want if t not in self._ids and t not in self._pending)
        if missing:
            conn.execute(text(
                "INSERT INTO prediction_terms (term) SELECT t FROM unnest(CAST(:t AS text[])) "
                "AS u(t) ORDER BY 1 ON CONFLICT (term) DO NOTHING"), {"t": missing})
            rows = conn.execute(text(
                "SELECT id, term FROM prediction_terms WHERE term = ANY(:t)"), {"t": missing}).all()
            self._pending.update({r.term: int(r.id) for r in rows})
        return {t: self._ids[t] if t in self._ids else self._pending[t] for t in want}

    def names(self, conn: Connection, ids: Iterable[int]) -> dict[int, str]:
        """The term of every id (ids come from stored predictions, so they exist)."""
        known = {v: k for k, v in (*self._ids.items(), *self._pending.items())}
        want = set(ids)
        missing = sorted(i for i in want if i not in known)
        if missing:
            for r in conn.execute(text("SELECT id, term FROM prediction_terms WHERE id = ANY(:i)"),
                                  {"i": missing}).all():
                known[int(r.id)] = r.term
                self._pending[r.term] = int(r.id)
        return {i: known[i] for i in want}

    def attrs(self, conn: Connection, rows: Sequence[Sequence[int] | None]) -> list[dict[str, str]]:
        """Each row's attribute ids as a ``{name: value}`` dict."""
        names = self.names(conn, {i for r in rows for i in (r or ())})
        return [dict(split_term(names[i]) for i in (r or ())) for r in rows]

    def slices(self, conn: Connection, rows: Sequence[Sequence[int] | None]) -> list[list[str]]:
        names: Mapping[int, str] = self.names(conn, {i for r in rows for i in (r or ())})
        return [[names[i] for i in (r or ())] for r in rows]
