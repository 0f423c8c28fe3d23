"""Camera looks: how a camera renders a digit, as plain numbers (no torch at import).

The named looks are what the traffic model and the incidents are made of; kept apart from
:mod:`simulator.images` (which renders them with torch) so that the scenario catalogue -- and with
it every ``vitmon`` command's argument parser -- loads without importing torch.

>>> LOOKS["studio"].blend(LOOKS["dim"], 0.0) == LOOKS["studio"]
True
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Look:
    """How a camera renders a digit; every field is a plain number so looks hash and compare.

    ``ink``/``paper`` are RGB in [0, 1]; ``gain``/``bias`` apply around mid-grey; ``blur`` in
    [0, 2] blends towards one or two passes of a 3x3 Gaussian; ``noise`` is the sensor noise
    standard deviation; ``size`` the native (square) capture resolution before the resize to 32.
    """

    ink: tuple[float, float, float] = (0.95, 0.95, 0.95)
    paper: tuple[float, float, float] = (0.08, 0.08, 0.08)
    gain: float = 1.0
    bias: float = 0.0
    gamma: float = 1.0
    blur: float = 0.0
    noise: float = 0.02
    size: int = 32

    def stack(self, n: int) -> dict[str, torch.Tensor]:
        """This look repeated for ``n`` images, in the columnar form :func:`render` takes."""
        return stack_looks([self] * n)

    def blend(self, other: Look, t: float) -> Look:
        """Linear interpolation towards ``other`` (``t`` in [0, 1]); size switches at t = 0.5.

        >>> Look(gain=1.0).blend(Look(gain=0.5), 0.5).gain
        0.75
        """
        mix = lambda a, b: a + (b - a) * t
        return Look(ink=tuple(mix(a, b) for a, b in zip(self.ink, other.ink, strict=True)),  # type: ignore[arg-type]
                    paper=tuple(mix(a, b) for a, b in zip(self.paper, other.paper, strict=True)),  # type: ignore[arg-type]
                    gain=mix(self.gain, other.gain), bias=mix(self.bias, other.bias),
                    gamma=mix(self.gamma, other.gamma), blur=mix(self.blur, other.blur),
                    noise=mix(self.noise, other.noise),
                    size=self.size if t < 0.5 else other.size)


# Named looks used by the traffic model and the incidents. Camera looks vary within the range the
# model was trained on; incident looks leave it on purpose.
LOOKS: dict[str, Look] = {
    "studio": Look(),
    "warm": Look(ink=(0.98, 0.90, 0.75), paper=(0.12, 0.08, 0.05), size=48),
    "cool": Look(ink=(0.80, 0.90, 1.00), paper=(0.05, 0.08, 0.15), gain=0.9, size=64),
    "dim": Look(ink=(0.75, 0.75, 0.70), paper=(0.05, 0.05, 0.05), gamma=1.2, noise=0.03, size=32),
    "bright": Look(ink=(1.0, 1.0, 1.0), paper=(0.20, 0.20, 0.22), bias=0.05, blur=0.3, size=96),
    # camera-firmware: an auto-exposure/colour-profile update washes frames out and softens them.
    "firmware-bug": Look(ink=(1.0, 0.88, 0.50), paper=(0.38, 0.30, 0.13), gain=0.9, bias=0.1,
                         gamma=0.75, blur=1.3, noise=0.05, size=48),
    # fairness-gap / gradual-drift targets: poorer optics and lighting.
    "degraded": Look(ink=(0.60, 0.58, 0.55), paper=(0.32, 0.30, 0.28), gain=0.85, blur=1.5,
                     noise=0.07, size=32),
    "dusk": Look(ink=(0.55, 0.55, 0.65), paper=(0.02, 0.02, 0.06), gain=0.8, bias=-0.05,
                 gamma=1.5, blur=0.8, noise=0.06, size=32),
}


def stack_looks(looks: list[Look]) -> dict[str, torch.Tensor]:
    """Columnar tensors of ``looks`` (one row per image)."""
    rows = [astuple(look) for look in looks]
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(fields(Look))
    import torch  # here, not at import: the scenario catalogue (and the CLI) load without torch

    out: dict[str, torch.Tensor] = {}
    for f, col in zip(fields(Look), cols, strict=True):
        dtype = torch.int64 if f.name == "size" else torch.float32
        out[f.name] = torch.tensor(list(col), dtype=dtype)
    return out
