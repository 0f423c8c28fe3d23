"""``vitmon dlq replay``: re-publish dead letters to the input topic for a fresh decode, e.g.
after an embedding dimension was set right (``models.<m>.embedding_dim``) or a cap was raised.
Idempotent by ``event_id``: an event accepted since, or a rejection replayed already, is skipped."""

from __future__ import annotations

import argparse

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, time_arg


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.core import kafka
    from monitor.store import dlq

    k = settings.kafka
    eng = engine(settings)
    try:
        with eng.begin() as conn:
            rows = dlq.replayable(conn, args.reason, args.since, args.until, k.predictions_topic)
            if rows and not args.dry_run:
                sink = kafka.make_sink(k.client, k.bootstrap)
                try:
                    for r in rows:
                        sink.produce(k.predictions_topic, bytes(r.raw),
                                     key=None if r.message_key is None else bytes(r.message_key))
                    sink.flush(60)
                finally:
                    sink.close()
                dlq.mark(conn, [r.event_id for r in rows], args.reason)
    finally:
        eng.dispose()
    verb = "would re-publish" if args.dry_run else "re-published"
    print(f"{verb} {len(rows)} events rejected with {args.reason!r} to {k.predictions_topic}")
    return 0


def register(sub: Subparsers) -> None:
    dlq_group = group(sub, "dlq", "the dead-letter queue")
    p = command(dlq_group, "replay", "re-publish rejected events (original bytes) to the input "
                "topic for a fresh decode; idempotent by event_id", cmd_replay)
    p.add_argument("--reason", required=True, help="the rejection reason, e.g. embedding_dim")
    p.add_argument("--since", type=time_arg, required=True, metavar="T",
                   help="rejected at or after T (wall time)")
    p.add_argument("--until", type=time_arg, metavar="T", help="rejected before T")
    p.add_argument("--dry-run", action="store_true", help="count, publish nothing")
