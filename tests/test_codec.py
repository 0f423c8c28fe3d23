"""``monitor.codec``: the bytes a state serialises to are pinned (stored states are compared and
merged across versions of vitmon, so a faster encoder must write exactly what the old one did)."""

import hashlib

import numpy as np

from detectors.reference import ProfileConfig, build_reference_profile
from detectors.synthetic import Traffic
from detectors.testing import context
from monitor.app.config import Settings
from monitor.codec import decode_value, encode_value
from monitor.contract import ReferenceObserver
from monitor.core.registry import load_detectors
from monitor.store.window_states import pack, unpack

#: sha256 of ``encode_value`` / ``pack`` of what :func:`_values` returns, written by the encoder
#: before its fast paths (main at 4bbbcef).
PINNED = {
    "odd": "415fd320d336f04b",
    "embedding_drift": ("9a95f9036b0f0703", "710e92a5fee8e8aa"),
    "examples": ("b2b04b28a80d84ed", "50f91a13999da26a"),
    "fairness": ("2c820a44d9c69d9d", "d6f83d86611f1d81"),
    "feature_drift": ("e355b2b8fb10403e", "990fc3457c1d4c8c"),
    "infra": ("634cf72e98820d5e", "1ad1a13b824db4a0"),
    "performance": ("580eb54452788c96", "4e695e4c9e115490"),
    "prediction_drift": ("c46099e54369092f", "ac9f110350e4726e"),
    "traffic": ("180b77ba2ecc78b0", "db4cb0e6453276d6"),
    "version_health": ("0488b4256aedf4ed", "ae991fd1672fca07"),
}


def _odd() -> dict:
    """Every branch of the encoder: numpy scalars (a float64 NaN is written as null, as it was),
    non-finite floats, non-str keys, non-contiguous, big-endian, empty, 0-d, datetime, float16,
    complex and bool arrays, tuples of plain and of mixed values, nested lists and dicts."""
    return {"a": [np.float64("nan"), float("inf"), -float("inf"), 1.5, np.int32(3), None, True,
                  2**62],
            (1, "x"): np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2], "e": np.zeros(0),
            "z": np.float32(2.5), "0d": np.array(3.0),
            "dt": np.array(["2020-01-01"], dtype="datetime64[D]"),
            "f16": np.ones(3, np.float16), "c": np.array([1 + 2j]),
            "b": np.array([True, False]), "t": (("a", "b"), ("c", 1, 2.0), []),
            "l": [[1], {"k": 2}], "u": np.arange(5, dtype=np.uint64),
            "ds": ["x", None, 1, False]}


def _states() -> dict:
    """A state of every default detector after 300 synthetic events (against a reference)."""
    settings = Settings()
    traffic, rng = Traffic(seed=1, dim=32), np.random.default_rng(3)
    reference = context(build_reference_profile(
        [traffic.batch(rng, 500) for _ in range(2)],
        ProfileConfig(embedding_sample_size=300, pca_fit_size=300, pca_components=8))).reference
    batch = traffic.batch(rng, 300)
    out = {}
    for det in load_detectors(settings.detectors.enabled, settings.detector_params()):
        out[det.name] = (det, det.observe_with_reference(det.empty(), batch, reference)
                         if isinstance(det, ReferenceObserver) else det.observe(det.empty(), batch))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_odd_values_encode_to_the_pinned_bytes_and_back():
    data = encode_value(_odd())
    assert _sha(data) == PINNED["odd"]
    back = decode_value(data)
    assert back["a"][0] is None  # a numpy NaN scalar is written as .item(), orjson's null
    assert back["a"][1:] == (float("inf"), -float("inf"), 1.5, 3, None, True, 2**62)
    assert back[(1, "x")].tolist() == [[0, 2], [4, 6], [8, 10]]
    assert back[(1, "x")].dtype == np.dtype(">i4")
    assert back["t"] == (("a", "b"), ("c", 1, 2.0), ())
    assert back["l"] == ((1,), {"k": 2})
    assert back["dt"].dtype == np.dtype("datetime64[D]")


def test_every_default_detectors_state_dumps_and_packs_to_the_pinned_bytes():
    for name, (det, state) in _states().items():
        data = det.dumps(state)
        assert (_sha(data), _sha(pack(data))) == PINNED[name], name
        assert det.dumps(det.loads(unpack(pack(data)))) == data, name
