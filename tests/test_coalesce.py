"""A checkpoint's batches joined before observing (monitor.core.coalesce): runs of one model
with the same columns become one batch, in stream order, and every default detector's states
are those of observing the batches one by one (exactly, but for the last bit of a float sum
added in another order: traffic's latency sum, as across checkpoints)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from detectors.reference import ProfileConfig, build_reference_profile
from detectors.testing import states_equal
from monitor.app.config import Settings
from monitor.contract import Batch, Reference
from monitor.core.coalesce import coalesce
from monitor.core.ingest import decode
from monitor.core.ingest.records import Record
from monitor.core.registry import load_detectors
from monitor.core.windows import Deltas, WindowAssigner
from monitor.devstack.synthetic import synthetic_stream
from slices import SliceCatalog, dimensions


def _decoded(n: int, seed: int, chunk: int, duplicates: float = 0.0) -> list[Batch]:
    messages, _, _ = synthetic_stream(n, seed=seed, malformed_fraction=0.0,
                                      duplicate_fraction=duplicates, versions=("1.0",))
    records = [Record("p", i % 3, i, k, v, -1) for i, (k, v) in enumerate(messages)]
    return [b for lo in range(0, len(records), chunk)
            for b in decode.decode_predictions(records[lo:lo + chunk], {}).batches.values()]


def test_runs_of_one_model_and_shape_are_joined_in_order():
    batches = _decoded(3_000, seed=1, chunk=500)
    assert len(batches) == 6
    joined = coalesce(batches)
    assert len(joined) == 1
    np.testing.assert_array_equal(joined[0].event_id, np.concatenate([b.event_id for b in batches]))
    np.testing.assert_array_equal(joined[0].embedding, np.concatenate([b.embedding for b in batches]))
    assert joined[0].embedding.dtype == batches[0].embedding.dtype
    for m in ("attrs", "extras", "image"):
        for k, v in getattr(joined[0], m).items():
            np.testing.assert_array_equal(v, np.concatenate([getattr(b, m)[k] for b in batches]))
    assert [len(b) for b in coalesce(batches, max_rows=1_200)] == [
        sum(map(len, batches[:2])), sum(map(len, batches[2:4])), sum(map(len, batches[4:]))]
    # another model, or other columns (an extra that one batch lacks), start a new run
    other = replace(batches[2], model=np.full(len(batches[2]), "other", dtype=object))
    lacking = replace(batches[4], extras={k: v for k, v in batches[4].extras.items()
                                          if k != "_offset"})
    parts = coalesce([batches[0], batches[1], other, batches[3], lacking, batches[5]])
    assert [len(b) for b in parts] == [len(batches[0]) + len(batches[1]), len(other),
                                       len(batches[3]), len(lacking), len(batches[5])]


def test_every_default_detector_observes_the_same_states_joined_or_not():
    settings = Settings()
    detectors = load_detectors(settings.detectors.enabled, settings.detector_params())
    profile = build_reference_profile(_decoded(2_000, seed=2, chunk=2_000), ProfileConfig(
        embedding_sample_size=500, pca_fit_size=500))
    reference = Reference("vit-tiny", "1.0", 1, profile)
    batches = _decoded(6_000, seed=3, chunk=700, duplicates=0.02)

    def states(bs: list[Batch]) -> dict:
        assigner = WindowAssigner(detectors, dimensions(("a0", "a1")), SliceCatalog(50),
                                  60_000, settings.detectors.slice_dimensions)
        deltas = Deltas()
        for b in bs:
            b = _first_occurrences(b)
            assigner.observe(b, assigner.slice_labels(b), deltas, lambda m, v: reference)
        return deltas.states

    one_by_one = states(_first_occurrences_across(batches))
    assert len({k.detector for k in one_by_one}) == len(detectors) and len(one_by_one) > 300
    joined = states(coalesce(_first_occurrences_across(batches)))
    assert joined.keys() == one_by_one.keys()
    by_name = {d.name: d for d in detectors}
    assert [k for k, s in joined.items() if not states_equal(s, one_by_one[k], rtol=1e-12)] == []
    exact = [k for k, s in joined.items()
             if by_name[k.detector].dumps(s) != by_name[k.detector].dumps(one_by_one[k])]
    assert {k.detector for k in exact} <= {"traffic"}


def _first_occurrences(batch: Batch) -> Batch:
    _, first = np.unique(batch.event_id.astype(str), return_index=True)
    return batch.take(np.sort(first))


def _first_occurrences_across(batches: list[Batch]) -> list[Batch]:
    """Each event once over all batches (what the checkpoint's insert leaves to observe)."""
    seen: set[str] = set()
    out = []
    for b in batches:
        keep = [i for i, e in enumerate(b.event_id.tolist()) if not (e in seen or seen.add(e))]
        out.append(b.take(np.asarray(keep, np.int64)))
    return out
