"""The labels table's lookups against real PostgreSQL, with event ids that need quoting."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.store import labels

AWKWARD = ['plain', 'with "quotes"', "it's", "back\\slash", "comma,brace{}", "new\nline",
           "ünïcødé-✓", "x" * 128, "NULL", " spaced "]


def test_known_returns_exactly_the_stored_labels_of_the_ids_asked(migrated_engine: Engine) -> None:
    stored = {e: i % 3 for i, e in enumerate(AWKWARD)}
    with migrated_engine.begin() as conn:
        labels.upsert(conn, {e: {"e": e, "l": lab, "t": 1_000 + i, "src": "test", "p": 0, "o": i}
                             for i, (e, lab) in enumerate(stored.items())})
        asked = [*AWKWARD[::2], "never-labelled", "plain2", ""]
        assert labels.known(conn, asked) == {e: stored[e] for e in AWKWARD[::2]}
        assert labels.known(conn, AWKWARD) == stored
        assert labels.known(conn, ["never-labelled"]) == {}
