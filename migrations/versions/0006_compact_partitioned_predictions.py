"""Compact, day-partitioned predictions (slice and attribute ids, no JSONB copy); the terms
dictionary; indexes for retention of window_states, findings and rejected_events

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PREDICTIONS = ("event_id str128, ts_ms bigint, model text, model_version text, "
                "window_start_ms bigint, pred int, confidence real?, is_error bool, "
                "latency_ms real, slice_ids int[], attr_ids int[], input_sha256 text?, "
                "sample_uri text?, kafka_partition int, kafka_offset bigint")
_MOVED = ("event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, is_error, "
          "latency_ms, input_sha256, sample_uri, kafka_partition, kafka_offset")
DAY_MS = 86_400_000

# prediction_attrs(attr_ids) / prediction_slices(slice_ids): a stored prediction's attributes as
# JSONB and its slice names as text[], for readers (UI queries, incidents).
_SLICES_FN = """
CREATE OR REPLACE FUNCTION prediction_slices(ids int[]) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(t.term ORDER BY t.id), '{}') FROM prediction_terms t
  WHERE t.id = ANY(ids)
$$"""
_ATTRS_FN = """
CREATE OR REPLACE FUNCTION prediction_attrs(ids int[]) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_object_agg(split_part(t.term, '=', 1),
                                   substr(t.term, strpos(t.term, '=') + 1)), '{}'::jsonb)
  FROM prediction_terms t WHERE t.id = ANY(ids)
$$"""


def upgrade() -> None:
    op.create_table("prediction_terms",
                    sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
                    sa.Column("term", sa.Text(), nullable=False), sa.PrimaryKeyConstraint("id"))
    op.create_index("uq_prediction_terms_term", "prediction_terms", ["term"], unique=True)
    op.execute(_ATTRS_FN)
    op.execute(_SLICES_FN)
    op.rename_table("predictions", "predictions_0003")
    op.execute("ALTER INDEX predictions_pkey RENAME TO predictions_0003_pkey")
    op.drop_index("ix_predictions_model_ts", table_name="predictions_0003")
    op.drop_index("ix_predictions_ts", table_name="predictions_0003")
    op.create_table("predictions", *columns(_PREDICTIONS),
                    sa.PrimaryKeyConstraint("event_id", "ts_ms"),
                    postgresql_partition_by="RANGE (ts_ms)")
    op.create_index("ix_predictions_model_ts", "predictions", ["model", "model_version", "ts_ms"])
    # Rows kept for the label join move over: their terms first, a partition per day, then the
    # rows with ids for text and JSONB.
    op.execute("INSERT INTO prediction_terms (term) SELECT DISTINCT t FROM ("
               "SELECT unnest(string_to_array(slices, E'\\x1f')) AS t FROM predictions_0003 "
               "UNION SELECT a.key || '=' || a.value FROM predictions_0003, "
               "jsonb_each_text(coalesce(attrs, '{}'::jsonb)) a) u ORDER BY 1")
    op.execute(f"""
DO $$
DECLARE d bigint;
BEGIN
  FOR d IN SELECT DISTINCT ts_ms / {DAY_MS} * {DAY_MS} FROM predictions_0003 LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF predictions FOR VALUES FROM (%s) TO (%s)',
                   'predictions_p' || to_char(to_timestamp(d / 1000) AT TIME ZONE 'UTC',
                                              'YYYYMMDD'), d, d + {DAY_MS});
  END LOOP;
END $$""")
    op.execute(f"INSERT INTO predictions ({_MOVED}, slice_ids, attr_ids) SELECT {_MOVED}, "
               "ARRAY(SELECT t.id FROM prediction_terms t WHERE t.term = ANY("
               "string_to_array(p.slices, E'\\x1f')) ORDER BY t.id), "
               "ARRAY(SELECT t.id FROM prediction_terms t JOIN jsonb_each_text("
               "coalesce(p.attrs, '{}'::jsonb)) a ON t.term = a.key || '=' || a.value "
               "ORDER BY t.id) FROM predictions_0003 p")
    op.drop_table("predictions_0003")
    op.create_index("ix_window_states_end", "window_states", ["window_end_ms"])
    op.create_index("ix_findings_window_end", "findings", ["window_end_ms"])


def downgrade() -> None:
    op.drop_index("ix_findings_window_end", table_name="findings")
    op.drop_index("ix_window_states_end", table_name="window_states")
    op.drop_table("predictions")  # partitions go with it
    op.create_table("predictions", *columns(
        "event_id str128, ts_ms bigint, model text, model_version text, window_start_ms bigint, "
        "pred int, confidence float?, is_error bool, latency_ms float, slices text, attrs jsonb?, "
        "input_sha256 text?, sample_uri text?, kafka_partition int, kafka_offset bigint, "
        "ingested_at now"), sa.PrimaryKeyConstraint("event_id"))
    op.create_index("ix_predictions_model_ts", "predictions", ["model", "model_version", "ts_ms"])
    op.create_index("ix_predictions_ts", "predictions", ["ts_ms"])
    op.execute("DROP FUNCTION prediction_attrs(int[])")
    op.execute("DROP FUNCTION prediction_slices(int[])")
    op.drop_table("prediction_terms")
