"""What input may create, decided inside the checkpoint transaction (issue 13).

The decoder consults :class:`Intake` (its :class:`~monitor.core.ingest.decode.DimensionGate`)
for every valid event and parks -- hands to the checkpoint with its original bytes, instead of
accepting -- the events of a (model, version) that is not admitted yet, and the events with an
embedding of a version whose dimension D is undecided. At the start of the checkpoint,
:meth:`Intake.begin`, in one transaction with the offsets:

1. **caps**: under a transaction-scoped advisory lock, a new (model, version) is admitted
   (``model_versions``) unless it would exceed ``intake.max_models`` or
   ``intake.max_versions_per_model``; the events of a refused one are rejected with
   ``too_many_models`` / ``too_many_versions`` (dead letter, ``rejected_events``, counted);
2. **embedding dimension** per (model, version), locked on its ``embedding_dims`` row: from
   ``models.<m>.embedding_dim``, else the version's active reference profile, else the
   consensus of :mod:`monitor.core.ingest.consensus` over the events parked so far by every
   process (``parked_events``), at once if its clear leader is the D decided last for another
   version of the model (a canary: ``source`` "previous_version"). Undecided: the events wait
   in ``parked_events`` (committed with the offsets that passed them, so exactly-once holds).
   Decided: every parked event of the version is decoded afresh with D -- accepted into this
   checkpoint, or rejected with ``embedding_dim`` -- and deleted (this checkpoint's parked
   events keep the decoder's validated rows, so only their D and C are checked again; those
   read back from ``parked_events`` are parsed again);
3. the slice admission (:class:`~monitor.core.slice_admission.TopKAdmission`) of the windows of
   all accepted events.

Rejections decided here are in the transaction's ``rejected_events`` and reach the DLQ topic
before it commits (``CheckpointResult.dead_letters``, at least once, like the decoder's).
``vitmon dlq replay`` re-publishes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from monitor.contract import Batch
from monitor.core.ingest import consensus
from monitor.core.ingest.decode import Parked, Rejection, decode_predictions
from monitor.core.ingest.records import Record
from monitor.core.settings import IntakeSettings
from monitor.core.slice_admission import TopKAdmission
from monitor.store import embedding_dims, model_versions

TOO_MANY_MODELS, TOO_MANY_VERSIONS = "too_many_models", "too_many_versions"
#: Reason codes decided here (the decoder's are ``decode.REASONS``).
REASONS = (TOO_MANY_MODELS, TOO_MANY_VERSIONS)

Key = tuple[str, str]  # (model, model_version)
#: Records per poll before the first commit on a new database: all of them park until it.
FIRST_POLL_RECORDS = 1_000


@dataclass
class IntakeOutcome:
    """What the parked events became in this checkpoint."""

    batches: list[Batch] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class _Dims:
    """A gate that knows the decided D of the versions being settled (0: undecided)."""

    def __init__(self, dims: Mapping[Key, int]) -> None:
        self.dims = dims

    def expected(self, model: str, version: str) -> int:
        return self.dims.get((model, version), 0)


def refusal(admitted: set[Key], key: Key, max_models: int, max_versions: int) -> str | None:
    """The cap a new (model, version) would exceed, or None to admit it.

    >>> refusal({("a", "1"), ("a", "2")}, ("b", "1"), max_models=1, max_versions=5)
    'too_many_models'
    >>> refusal({("a", "1"), ("a", "2")}, ("a", "3"), max_models=1, max_versions=2)
    'too_many_versions'
    """
    models = {m for m, _ in admitted}
    if key[0] not in models:
        return TOO_MANY_MODELS if len(models) >= max_models else None
    if sum(1 for m, _ in admitted if m == key[0]) >= max_versions:
        return TOO_MANY_VERSIONS
    return None


class Intake:
    def __init__(self, settings: IntakeSettings, configured_dims: Mapping[str, int],
                 admission: TopKAdmission | None = None) -> None:
        self.settings = settings
        self.configured = dict(configured_dims)
        self.admission = admission
        self.dims: dict[Key, int] = {}  # committed decisions
        self.versions: set[Key] = set()  # committed admissions
        self._dims_attempt: dict[Key, int] = {}
        self._versions_attempt: set[Key] = set()
        #: admitted versions a committed checkpoint left undecided (a consensus to wait for)
        self.waiting: set[Key] = set()
        self._waiting_attempt: set[Key] = set()

    def load(self, conn: Connection) -> None:
        """At start: the decided dimensions and admitted versions."""
        self.dims = embedding_dims.decided(conn)
        self.versions = model_versions.admitted(conn)

    # -- DimensionGate (the decoder, on the polling thread) ------------------------------------
    def expected(self, model: str, version: str) -> int | None:
        key = (model, version)
        if key not in self.versions:
            return None
        return self.configured.get(model) or self.dims.get(key, 0)

    def settles(self, keys: Iterable[Key]) -> bool:
        """Whether a checkpoint holding parked events of these versions is expected to settle
        one (admit it and decide its D), so that the events read after it commits need not
        park: the consumer checkpoints them at once and takes no records until it commits. Not
        for a version the committed admissions refuse already, nor one a committed checkpoint
        left waiting for a consensus: a version costs at most one such pause.

        >>> intake = Intake(IntakeSettings(max_models=1, max_versions_per_model=2), {})
        >>> intake.versions = {("vit", "1")}
        >>> [intake.settles([k]) for k in [("vit", "1"), ("vit", "2"), ("other", "1")]]
        [True, True, False]
        >>> intake.versions.add(("vit", "2")); intake.waiting.add(("vit", "2"))
        >>> intake.settles([("vit", "2"), ("vit", "3")])  # waiting; over the cap
        False
        """
        models = Counter(m for m, _ in self.versions)
        for key in keys:
            if key in self.waiting:
                continue
            if key in self.versions or (models[key[0]] < self.settings.max_versions_per_model
                                        if key[0] in models
                                        else len(models) < self.settings.max_models):
                return True
        return False

    def poll_size(self, max_records: int, committed: bool) -> int:
        """Records the consumer polls: few before its first commit on a database with no
        version admitted (a new one), where every valid event parks until that commit."""
        return max_records if committed or self.versions else min(max_records,
                                                                  FIRST_POLL_RECORDS)

    def snapshot(self) -> dict[Key, int]:
        """:meth:`expected` of every admitted version (the others: None), for a decode worker
        (``monitor.core.decode_pool``). Copied first: the checkpoint thread updates them."""
        versions, dims = set(self.versions), dict(self.dims)
        return {k: self.configured.get(k[0]) or dims.get(k, 0) for k in versions}

    # -- the checkpoint ----------------------------------------------------------------------
    def begin(self, conn: Connection, parked: Sequence[Parked], batches: Sequence[Batch],
              flush: bool) -> IntakeOutcome:
        """Steps 1-3 of the module docstring; returns the batches and rejections to add."""
        self._dims_attempt, self._versions_attempt, self._waiting_attempt = {}, set(), set()
        out = IntakeOutcome()
        parked = self._apply_caps(conn, parked, out)
        self._settle(conn, parked, flush, out)
        if self.admission is not None:
            self.admission.begin(conn, [*batches, *out.batches])
        return out

    def _apply_caps(self, conn: Connection, parked: Sequence[Parked],
                    out: IntakeOutcome) -> list[Parked]:
        keys = list(dict.fromkeys((p.model, p.model_version) for p in parked))
        if all(k in self.versions for k in keys):
            return list(parked)
        admitted = model_versions.lock_and_load(conn)
        refused: dict[Key, str] = {}
        new = []
        for key in keys:  # in stream order: the first versions seen are the ones admitted
            if key in admitted:
                continue
            reason = refusal(admitted, key, self.settings.max_models,
                             self.settings.max_versions_per_model)
            if reason is None:
                admitted.add(key)
                new.append(key)
            else:
                refused[key] = reason
        model_versions.admit(conn, new)
        self._versions_attempt = set(admitted)
        kept = []
        for p in parked:
            reason = refused.get((p.model, p.model_version))
            if reason is None:
                kept.append(p)
                continue
            if reason == TOO_MANY_MODELS:
                detail = (f"intake.max_models={self.settings.max_models} models admitted "
                          f"already: model {p.model!r} is not")
            else:
                detail = (f"intake.max_versions_per_model={self.settings.max_versions_per_model}"
                          f" versions of model {p.model!r} admitted already: "
                          f"{p.model_version!r} is not")
            out.rejected.append(Rejection(p.topic, p.partition, p.offset, p.key, p.value, reason,
                                          detail, p.event_id, p.model, p.model_version))
        return kept

    def _settle(self, conn: Connection, parked: Sequence[Parked], flush: bool,
                out: IntakeOutcome) -> None:
        by_key: dict[Key, list[Parked]] = {}
        for p in parked:
            by_key.setdefault((p.model, p.model_version), []).append(p)
        waiting = {(r.model, r.model_version) for r in embedding_dims.pending(conn)}
        locked = embedding_dims.lock(conn, set(by_key) | waiting) if by_key or waiting else {}
        s = self.settings
        decided: dict[Key, int] = {}
        records: list[Record | Parked] = []
        held: list[Parked | None] = []  # this checkpoint's parked events keep their rows
        for key in sorted(locked):
            stored, waited = locked[key]
            events = by_key.get(key, [])
            dim = self.configured.get(key[0]) or stored  # the setting wins over a decision
            if dim is None:
                dim = embedding_dims.reference_dim(conn, key)
                if dim is not None:
                    embedding_dims.decide(conn, key, dim, "reference")
            if dim is None:  # vote: the events parked so far and this checkpoint's
                votes = embedding_dims.votes(conn, key)
                for p in events:
                    if p.dim:
                        votes[p.dim] = votes.get(p.dim, 0) + 1
                rule = (votes, waited, flush, s.dim_consensus_events, s.dim_consensus_wait_s,
                        s.dim_min_agree)
                dim, source = consensus.decide(*rule), "consensus"
                if dim is None:  # a canary: the model's last D may decide it before the wait
                    prior = embedding_dims.previous_version_dim(conn, key)
                    dim, source = consensus.decide(*rule, prior=prior), "previous_version"
                if dim is not None:
                    embedding_dims.decide(conn, key, dim, source)
                else:  # wait: park those with an embedding, accept the others
                    embedding_dims.park(conn, [_parked_row(p) for p in events if p.dim])
                    events = [p for p in events if not p.dim]
                    self._waiting_attempt.add(key)
            if dim is not None:
                decided[key] = dim
                records += [Record(r.topic, r.kafka_partition, r.kafka_offset, r.message_key,
                                   r.raw, -1) for r in embedding_dims.take_parked(conn, key)]
                held += [None] * (len(records) - len(held))
            records += events
            held += events
        self._dims_attempt = decided
        if records:
            settled = decode_predictions(records, {}, gate=_Dims(decided), decoded=held)
            out.batches += settled.batches.values()
            out.rejected += settled.rejected

    def finish(self, conn: Connection) -> None:
        """Near the end of the checkpoint (after the detector states)."""
        if self.admission is not None:
            self.admission.finish(conn)

    def committed(self) -> None:
        """After the commit: this checkpoint's decisions are durable."""
        self.dims.update(self._dims_attempt)
        self.versions |= self._versions_attempt
        self.waiting = (self.waiting | self._waiting_attempt) - self.dims.keys()
        self._dims_attempt, self._versions_attempt, self._waiting_attempt = {}, set(), set()
        if self.admission is not None:
            self.admission.committed()


def _parked_row(p: Parked) -> dict:
    values = (p.topic, p.partition, p.offset, p.model, p.model_version, p.dim, p.event_id, p.key,
              p.value)
    return dict(zip(embedding_dims.PARKED_COLUMNS, values))
