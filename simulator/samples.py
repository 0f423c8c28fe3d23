"""The local sample store: the frames the simulated servers classified, as PNG files, so events
can carry a ``file://`` ``sample_uri`` that the UI shows as a thumbnail (an image store such as
S3 in production; vitmon itself stores only the pointer).

Files are content-addressed by the SHA-256 of the pixels the model received (the event's
``input_sha256``), so a frame re-served from the pool is written once and a re-run with the same
seed rewrites nothing.

>>> import tempfile, numpy as np
>>> store = SampleStore(Path(tempfile.mkdtemp()))
>>> px = np.zeros((3, 32, 32), np.uint8); px[0] = 200
>>> uri = store.write("ab" * 32, px)
>>> uri.startswith("file://") and uri.endswith("/ab/" + "ab" * 32 + ".png"), store.written
(True, 1)
>>> _ = store.write("ab" * 32, px); store.written
1
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


class SampleStore:
    """PNG files under ``root/<sha[:2]>/<sha>.png``; :meth:`uri` is their ``file://`` URI."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.written = 0

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.png"

    def uri(self, sha: str) -> str:
        return self.path(sha).as_uri()

    def write(self, sha: str, pixels: np.ndarray) -> str:
        """Write one frame (uint8 [3, H, W]) unless it is there; return its URI."""
        path = self.path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(tmp, "PNG")
            tmp.replace(path)  # atomic: a reader never sees half a file
            self.written += 1
        return self.uri(sha)
