"""Storage footprint for capacity planning (``bench/groups.py``, docs/scaling.md): rows and bytes
(with indexes and TOAST) of the tables a checkpoint writes, and window-state sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

#: The tables a checkpoint writes rows to.
CHECKPOINT_TABLES = ("predictions", "window_states", "findings", "consumer_offsets",
                     "ingest_counts", "rejected_events")


def tables(conn: Connection, names: Sequence[str] = CHECKPOINT_TABLES) -> dict[str, tuple[int, int]]:
    """Table -> (rows, bytes on disk with indexes and TOAST)."""
    out = {}
    for name in names:
        if name not in CHECKPOINT_TABLES:
            raise ValueError(f"not a checkpoint table: {name}")
        rows = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0
        size = conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                            {"t": name}).scalar() or 0
        out[name] = (int(rows), int(size))
    return out


def state_sizes(conn: Connection) -> dict[str, Any]:
    """Stored (compressed) window-state size per key: mean and max bytes, and the key count."""
    r = conn.execute(text("SELECT count(*) AS n, avg(octet_length(state)) AS avg, "
                          "max(octet_length(state)) AS max FROM window_states")).one()
    return {"keys": int(r.n), "avg_bytes": float(r.avg or 0), "max_bytes": int(r.max or 0)}
