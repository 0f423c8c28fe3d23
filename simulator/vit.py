"""A small Vision Transformer (ViT-Tiny width) in plain torch.

The architecture follows Dosovitskiy et al. (2021): a strided convolution cuts the image into
patches and projects each to ``width`` dimensions, a learned class token is prepended, learned
position embeddings are added, then ``depth`` pre-norm encoder blocks (multi-head self-attention
and an MLP, each inside a residual connection) and a final LayerNorm. The classification head reads
the class token, which is also the embedding the simulator publishes.

>>> import torch
>>> cfg = ViTConfig(depth=1)
>>> model = ViT(cfg).eval()
>>> logits, cls = model(torch.zeros(2, 3, cfg.image_size, cfg.image_size))
>>> tuple(logits.shape), tuple(cls.shape)
((2, 10), (2, 192))
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """Architecture hyper-parameters (stored with the weights so loading needs no code change).

    The defaults suit 32x32 RGB digits: an 8-pixel patch gives a 4x4 grid of 16 tokens plus the
    class token, enough spatial resolution for 8x8-pixel source digits and cheap enough to train
    on one CPU core in about a minute.
    """

    image_size: int = 32
    patch_size: int = 8
    channels: int = 3
    n_classes: int = 10
    width: int = 192
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm encoder block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.norm1 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.attn = nn.MultiheadAttention(cfg.width, cfg.heads, dropout=cfg.dropout,
                                          batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(hidden, cfg.width), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision Transformer returning ``(logits, cls_embedding)``."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.channels, cfg.width, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.head = nn.Linear(cfg.width, cfg.n_classes)
        # ViT initialisation: small normal position embeddings and class token, as in timm.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify normalised images ``[N, C, H, W]``; returns logits and the CLS embedding."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [N, patches, width]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        cls = self.norm(x)[:, 0]
        return self.head(cls), cls


def corrupt_position_embeddings(model: ViT, seed: int, strength: float) -> ViT:
    """Copy of ``model`` whose patch position embeddings are partly scrambled.

    Models a bad export (the canary-regression incident): a seeded permutation of the patch
    positions is blended with the trained table, ``strength`` in [0, 1] (1 = fully permuted). The
    class-token position is left alone, so the model still runs and stays confident on part of
    the traffic, which is what makes a real canary regression hard to see without labels.

    >>> m = ViT(ViTConfig(depth=1))
    >>> bad = corrupt_position_embeddings(m, seed=1, strength=1.0)
    >>> bool(torch.equal(bad.pos_embed[:, 0], m.pos_embed[:, 0]))
    True
    >>> bool(torch.equal(bad.pos_embed, m.pos_embed))
    False
    """
    bad = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        patches = bad.pos_embed[:, 1:]
        shuffled = patches[:, torch.randperm(patches.shape[1], generator=gen)]
        bad.pos_embed[:, 1:] = (1.0 - strength) * patches + strength * shuffled
    return bad
