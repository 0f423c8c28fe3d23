"""Fuzzing the decoder, short budget: no exception escapes ``decode_predictions`` /
``decode_labels``, every message is accepted or rejected with a reason code, and an accepted
event's columns equal the plain ``json.loads`` decode of ``tests/fuzz_oracle.py``.

The seeds are real messages (``tests/fuzz_corpus.py``); the mutations (``tests/fuzz_mutators.py``)
and the comparison (``tests/fuzz_check.py``) are the ones the long atheris campaign
``bench/fuzz_decode.py`` runs (its figure is in the README).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.ingest.decode import REASONS, parse_ts
from tests import fuzz_oracle as oracle
from tests.decode_support import raw
from tests.fuzz_check import Harness, Mismatch, check_labels, check_predictions
from tests.fuzz_corpus import seeds
from tests.fuzz_mutators import RandomChooser

MUTANTS = 1500  # seeded inputs per kind; a few seconds
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. numpy overflow casts


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness(*seeds())


def test_every_seed_decodes_like_the_oracle(harness: Harness) -> None:
    reasons = check_predictions(harness.preds)
    assert reasons.count(None) > len(reasons) / 2  # mostly real, valid events
    rejected = Counter(r for r in reasons if r)
    assert {"malformed_json", "non_finite", "bad_schema", "missing_field", "wrong_type",
            "bad_value"} <= set(rejected), rejected  # the simulator's malformed kinds
    assert harness.dims and harness.counts  # the seeds teach D and C of each model
    label_reasons = check_labels(harness.labels)
    assert label_reasons.count(None) == len(label_reasons)


@pytest.mark.parametrize("labels", [False, True], ids=["predictions", "labels"])
def test_seeded_mutants_agree_with_the_oracle(harness: Harness, labels: bool) -> None:
    chooser = RandomChooser(random.Random(13))
    seen: Counter[str | None] = Counter()
    for i in range(MUTANTS):
        seen.update(harness.run_chooser(chooser, labels=labels, how=Harness.HOW[i % 3]))
    # The mutants reach both sides of the contract: some stay valid, most reasons occur.
    assert seen[None] > MUTANTS / 20, seen
    expected = {"malformed_json", "non_finite", "bad_schema", "missing_field", "wrong_type",
                "bad_value"}
    if not labels:
        expected |= {"embedding_dim", "probs_dim", "parked"}  # parked: the consumer's gate
    assert expected <= set(seen), seen


class _DrawChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def below(self, n: int) -> int:
        return self.data.draw(st.integers(0, n - 1)) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self.data.draw(st.binary(max_size=max_len))


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_mutants_agree_with_the_oracle(harness: Harness, data: st.DataObject) -> None:
    labels, how = data.draw(st.booleans()), data.draw(st.sampled_from(Harness.HOW))
    harness.run_chooser(_DrawChooser(data), labels=labels, how=how)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(value=st.binary(max_size=64) | st.text(max_size=64).map(lambda s: s.encode("utf-8",
                                                                              "surrogatepass")))
def test_arbitrary_bytes_are_rejected_with_a_reason(value: bytes) -> None:
    for reason in check_predictions([value]) + check_labels([value]):
        assert reason in REASONS


def test_a_mismatch_is_reported_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison itself fails when the decoder's answer differs (a doctored oracle)."""
    real = oracle.prediction
    monkeypatch.setattr(oracle, "prediction",
                        lambda v, d, c, **kw: oracle.Verdict(frozenset({"bad_schema"})))
    with pytest.raises(Mismatch, match="oracle rejects it"):
        check_predictions([raw()])

    def shifted(v, d, c, **kw):
        verdict = real(v, d, c, **kw)
        return verdict._replace(fields={**verdict.fields, "embedding": [0.5, -1.0, 2.5]})

    monkeypatch.setattr(oracle, "prediction", shifted)
    with pytest.raises(Mismatch, match="field 'embedding'"):
        check_predictions([raw()])
    monkeypatch.setattr(oracle, "prediction", lambda v, d, c, **kw: oracle.Verdict(frozenset()))
    with pytest.raises(Mismatch, match="rejected as bad_schema"):
        check_predictions([raw(schema="vit.prediction/v9")])


@pytest.mark.parametrize("text", [
    "2026-01-01T00:00:00Z", "2026-01-01t01:02:03.999999z", "1970-01-01T00:00:00+00:00",
    "2026-02-28T23:59:59.1-23:59", "2024-02-29 12:00:00.12+05:30", "9999-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00+00:01", "2026-02-29T00:00:00Z", "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0100",
    "2026-01-31 00:00:00.123+01:60",  # found by fuzzing: fromisoformat took minute 60
    "\uff12026-01-01T00:00:00Z"])  # a full-width digit is no RFC 3339 digit
def test_oracle_timestamps_match_parse_ts(text: str) -> None:
    want = oracle.rfc3339_ms(text)
    if want is None or not 0 <= want < oracle.MAX_TS_MS:
        with pytest.raises(ValueError):
            parse_ts(text)
    else:
        assert parse_ts(text) == want


def test_numbers_that_overflow_a_double_are_non_finite() -> None:
    """Found by fuzzing: a 309-digit integer (beyond any double, but 309 digits long) was
    ``malformed_json``; the contract says ``non_finite``."""
    value = raw().replace(b"12.5", b"9" * 309)
    assert check_predictions([value]) == ["non_finite"]


def test_a_lone_surrogate_in_a_repeated_key_is_malformed_for_both() -> None:
    """Found by the campaign: json.loads keeps a repeated key's last value, so the oracle missed
    a lone surrogate in the value it overwrote, while orjson refuses the whole message; both
    now say ``malformed_json``."""
    value = raw().replace(b'"event_id":"e1"', b'"event_id":"\\udc00\\ud800","event_id":"e1"')
    assert b"\\udc00" in value
    assert check_predictions([value]) == ["malformed_json"]


def test_an_event_of_an_unadmitted_version_is_parked_only_when_valid() -> None:
    """Found by fuzzing: the consumer's gate parked an event of a version it had not admitted
    yet without the checks ``_batch`` runs for the others (probs summing to 1.9 were parked,
    to be counted later, instead of rejected)."""
    gate = {("m", "1"): 3}  # version "2" is not admitted: its valid events wait
    bad_sum = raw(model_version="2", embedding=None, probs=[0.9, 0.9, 0.1])
    valid = raw(model_version="2", embedding=None, event_id="e2")
    assert check_predictions([bad_sum, valid], counts={"m": 3}, gate=gate) == ["bad_value",
                                                                               "parked"]
