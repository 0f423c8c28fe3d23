"""The PostgreSQL advisory lock ids vitmon takes, in one place so no two uses share an id by
accident (a shared id makes unrelated work wait on each other: `vitmon db upgrade` and every
checkpoint's partition check once did). Single-key locks (``pg_advisory_lock(bigint)``) and
two-key locks (``pg_advisory_lock(int, int)``) live in separate PostgreSQL key spaces."""

#: schema migrations, session-scoped while Alembic runs ("vitmon" + "m")
MIGRATION = 0x76_69_74_6D_6F_6E_6D
#: creating or dropping a day partition of ``predictions`` ("vitmon" + "p")
PARTITION = 0x76_69_74_6D_6F_6E_70
#: admitting a new (model, version) and deciding its embedding dimension ("vitm")
VERSION_ADMISSION = 0x76_69_74_6D
#: one step of the alert engine: alerts and incidents ("vital")
ALERT_ENGINE = 0x76_69_74_61_6C
#: the label join's class; the second key is a bucket of ``crc32(event_id)`` ("vj")
LABEL_JOIN_CLASS = 0x76_6A
