"""Thumbnails of example inputs, fetched by the UI server from a ``sample_uri``.

Only URIs under a configured prefix (``ui.samples.allow``) are read: ``file://`` paths are
resolved first (``..`` cannot climb out of an allowed directory), ``http(s)://`` is fetched
without following redirects. Every read is bounded in bytes and time, the bytes must decode as an
image of at most :data:`MAX_PIXELS` pixels, and what is returned is a fresh PNG thumbnail, never
the fetched bytes. Nothing here writes to vitmon's database; :mod:`ui.store` caches results in
memory for ``ui.samples.cache_s`` seconds. Pure apart from the read itself (no Streamlit).

>>> import tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp()); Image.new("RGB", (32, 32), "red").save(d / "a.png")
>>> allow = (d.as_uri() + "/",)
>>> t = thumbnail((d / "a.png").as_uri(), allow, max_bytes=10_000, timeout_s=1, size_px=96)
>>> t.reason, Image.open(io.BytesIO(t.png)).size
('', (96, 96))
>>> thumbnail((d / ".." / "etc" / "passwd").as_uri(), allow, 10_000, 1, 96).reason
'not under an allowed prefix (ui.samples.allow)'
>>> thumbnail("s3://bucket/x.png", allow, 10_000, 1, 96).reason
'not under an allowed prefix (ui.samples.allow)'
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 16_000_000  # a decompression bomb is refused before it is decoded


@dataclass(frozen=True, slots=True)
class Thumb:
    uri: str
    png: bytes | None  # the thumbnail; None when it could not be made
    reason: str = ""  # why not ("" when png is set)


def _file_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(os.path.realpath(unquote(parts.path)))


def allowed(uri: str, allow: tuple[str, ...]) -> bool:
    """Whether ``uri`` lies under one of the ``allow`` prefixes (file paths compared resolved)."""
    if uri.startswith("file:"):
        path = _file_path(uri)
        if path is None:
            return False
        for prefix in allow:
            root = _file_path(prefix)
            if root is not None and (path == root or root in path.parents):
                return True
        return False
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and any(
        p.startswith(("http://", "https://")) and uri.startswith(p) for p in allow)


def _read(uri: str, max_bytes: int, timeout_s: float) -> bytes:
    if uri.startswith("file:"):
        path = _file_path(uri)
        assert path is not None
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    else:
        with requests.get(uri, timeout=timeout_s, stream=True, allow_redirects=False) as resp:
            resp.raise_for_status()
            data = b""
            for chunk in resp.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    break
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    return data


def thumbnail(uri: str, allow: tuple[str, ...], max_bytes: int, timeout_s: float,
              size_px: int) -> Thumb:
    """A PNG thumbnail (``size_px`` on its longer side) of the image at ``uri``, or the reason
    there is none."""
    if not allowed(uri, allow):
        return Thumb(uri, None, "not under an allowed prefix (ui.samples.allow)")
    try:
        data = _read(uri, max_bytes, timeout_s)
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                return Thumb(uri, None, "image too large")
            im = im.convert("RGB")
            scale = size_px / max(im.width, im.height)
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            # small frames (the simulator's 32x32) are enlarged without blurring their pixels
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            out = io.BytesIO()
            im.resize(size, resample).save(out, "PNG")
        return Thumb(uri, out.getvalue())
    except (OSError, ValueError, UnidentifiedImageError, requests.RequestException,
            Image.DecompressionBombError) as exc:
        return Thumb(uri, None, f"unreadable: {type(exc).__name__}")
