"""Times a person types (command-line options, UI links): epoch milliseconds, RFC 3339, or a
date. Event times inside events are parsed strictly by the decoder instead
(:func:`monitor.core.ingest.decode.parse_ts`)."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_time(value: str | None) -> int | None:
    """Epoch milliseconds from epoch milliseconds, RFC 3339 (``Z`` or an offset; naive means
    UTC) or a date; None for anything else.

    >>> parse_time("2026-11-01T00:00:00Z"), parse_time("1793491200000"), parse_time("2026-11-01")
    (1793491200000, 1793491200000, 1793491200000)
    >>> parse_time("soon") is None, parse_time(None) is None
    (True, True)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
