"""The seed corpus for fuzzing the decoder: real messages, valid and broken.

- the simulator's own stream (``vitmon simulate --out``: predictions from the real small ViT,
  RFC 3339 and epoch timestamps, error events, labels), some with the embedding rewritten from
  base64 to a JSON list (the other wire format);
- the unit tests' message builders (``tests/decode_support.py``) and every malformed kind of
  ``simulator/malformed.py`` applied to a realistic event.

Seeds are bytes; :func:`write_dir` lays them out as an atheris/libFuzzer corpus directory whose
files start with the :data:`MODES` byte that tells the harness how to read the rest.
"""

from __future__ import annotations

import argparse
import base64
import functools
import tempfile
from pathlib import Path

import numpy as np
import orjson

from monitor.core.ingest.events import encode_label, encode_prediction
from monitor.core.ingest.jsonl import read_messages
from simulator import malformed
from simulator.cli import add_arguments, run
from tests.decode_support import T0, f16_b64, raw

#: First byte of an atheris input: how the rest becomes messages (see bench/fuzz_decode.py).
MODES = {"prediction": 0, "prediction-mutant": 1, "label": 2, "label-mutant": 3}
SIM_ARGS = ("--scenario", "mixed", "--rate", "1", "--duration", "300", "--seed", "7",
            "--start", "2026-11-01T00:00:00Z", "--no-progress")


@functools.cache
def simulated() -> tuple[list[bytes], list[bytes]]:
    """(prediction messages, label messages) of a short simulated run (about 300 events)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.jsonl"
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        if run(parser.parse_args([*SIM_ARGS, "--out", str(out)])) != 0:
            raise RuntimeError("the simulator failed to write the seed corpus")
        messages = list(read_messages(out))
    preds = [v for t, _, v in messages if t.endswith("predictions")]
    labels = [v for t, _, v in messages if t.endswith("labels")]
    return preds, labels


def as_list_embedding(value: bytes) -> bytes:
    """The same event with its ``embedding_b64`` written as a JSON ``embedding`` list (the
    simulator's ``--embedding-format list``)."""
    ev = orjson.loads(value)
    if "embedding_b64" not in ev:
        return value
    raw_bytes = base64.b64decode(ev.pop("embedding_b64"))
    dtype = "<f2" if ev.pop("embedding_dtype") == "f16" else "<f4"
    ev["embedding"] = np.frombuffer(raw_bytes, dtype).astype(np.float64).tolist()
    return orjson.dumps(ev)


def _pick_spread(values: list[bytes], n: int) -> list[bytes]:
    step = max(1, len(values) // n)
    return values[::step][:n]


def builder_seeds() -> tuple[list[bytes], list[bytes]]:
    """Messages from the unit tests' builders and the simulator's malformed kinds."""
    preds = [
        raw(), raw(status="error", pred=None, error_code="CUDA_OOM"),
        raw(ts="2026-01-01T00:00:00.5+01:00", confidence=0.7),
        raw(**f16_b64([0.5, -1.0, 2.0]), image={"width": 224, "brightness": 0.4},
            attrs={"camera_id": "cam-3", "region": 2}),
        raw(embedding=None, probs=None, batch_size=8, cold_start=True, gpu_mem_mb=1024.5,
            gpu_util=0.9, artifact_id="sha256:ab", input_sha256="0f", sample_uri="s3://b/k"),
    ]
    event = orjson.loads(raw(attrs={"camera_id": "cam-1"}, confidence=0.7))
    event.pop("schema")
    preds += [malformed.build(kind, event) for kind in malformed.KINDS if kind != "oversized"]
    preds.append(encode_prediction({**event, "ts": T0 + 1}))
    labels = [encode_label("e1", 3, T0), encode_label("e2", 0, "2026-01-01T00:00:00Z", "human"),
              b'{"schema":"vit.label/v1","event_id":"e3","label":1,"ts":1.5e12,"source":null}']
    return preds, labels


def seeds(per_source: int = 40) -> tuple[list[bytes], list[bytes]]:
    """(prediction seeds, label seeds): the builders' plus a spread of the simulator's."""
    preds, labels = builder_seeds()
    sim_preds, sim_labels = simulated()
    spread = _pick_spread(sim_preds, per_source)
    preds += spread + [as_list_embedding(v) for v in spread[: per_source // 4]]
    labels += _pick_spread(sim_labels, per_source // 4)
    return preds, labels


def write_dir(directory: Path, per_source: int = 40) -> int:
    """Write the seeds as a libFuzzer corpus directory; the number of files written."""
    directory.mkdir(parents=True, exist_ok=True)
    preds, labels = seeds(per_source)
    n = 0
    for mode, values in (("prediction", preds), ("prediction-mutant", preds[:20]),
                         ("label", labels), ("label-mutant", labels[:10])):
        for value in values:
            (directory / f"seed-{n:05d}").write_bytes(bytes([MODES[mode]]) + value)
            n += 1
    return n
