"""Memory-light Binary Concrete message passing for low-rank pseudo-graphs (ACGKD, arXiv 2504.00540).

ACGKD claims reduced spatial complexity of pseudo-graph generation. Low-rank edge logits
log a = Z Z^T / sqrt(xi) + b (see :mod:`fedsim.graph.acgkd`) cut the *parameters* to O(n xi), but a
dense implementation still materialises several n x n tensors (logits, noise, relaxed sample) and
keeps them for backward, so activations stay O(n^2). This module never holds more than one
``block x n`` slab: :class:`ImplicitAdjacency` computes S @ X row-block by row-block, regenerating
each slab of S from (Z, b, seed) in backward instead of storing it (activation checkpointing by
construction). Memory O(n (xi + F + block)) per graph; compute about twice the dense version.

The logistic noise must be identical in forward and backward and symmetric in (i, j), so it comes
from a counter-based hash of (graph, min(i, j), max(i, j), seed) rather than a stateful generator
(our choice; any good integer hash works). Only the GIN aggregation S @ X and the density
1^T S 1 are needed by generation, so that is all this offers.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (three xor-shift-multiply rounds) on int64 tensors kept below 2^32."""
    for _ in range(3):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & MASK32
    return x ^ (x >> 16)


def pair_logistic_noise(num_graphs: int, rows: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """(G, len(rows), n) logistic noise, a function of the unordered pair: noise[i, j] == noise[j, i]."""
    cols = torch.arange(n)
    lo = torch.minimum(rows[:, None], cols[None, :])
    hi = torch.maximum(rows[:, None], cols[None, :])
    graph = torch.arange(num_graphs).view(-1, 1, 1)
    salt = hash32((graph * 0x27D4EB2F + seed * 0x165667B1) & MASK32)  # (G, 1, 1): cheap
    key = hash32((salt ^ (lo * 0x9E3779B1 + hi)) & MASK32)
    u = (key.double() + 0.5) / 2.0**32
    return (torch.log(u) - torch.log1p(-u)).float()


class _ConcreteMatmul(torch.autograd.Function):
    """out = S @ x with S = sigmoid((Z Z^T / sqrt(xi) + b + noise) / lam) * valid-pair mask."""

    @staticmethod
    def slab(z, bias, mask, rows, lam, seed):
        xi = z.shape[-1]
        logits = z[:, rows] @ z.transpose(1, 2) / math.sqrt(xi) + bias
        s = torch.sigmoid((logits + pair_logistic_noise(z.shape[0], rows, z.shape[1], seed)) / lam)
        valid = mask[:, rows, None] & mask[:, None, :]
        valid &= rows[:, None] != torch.arange(z.shape[1])[None, :]
        return s * valid

    @staticmethod
    def forward(ctx, z, bias, x, mask, lam, seed, block):
        ctx.save_for_backward(z, bias, x, mask)
        ctx.lam, ctx.seed, ctx.block = lam, seed, block
        out = x.new_zeros(x.shape)
        for rows in torch.arange(z.shape[1]).split(block):
            out[:, rows] = _ConcreteMatmul.slab(z, bias, mask, rows, lam, seed) @ x
        return out

    @staticmethod
    def backward(ctx, gout):
        z, bias, x, mask = ctx.saved_tensors
        scale = 1.0 / math.sqrt(z.shape[-1])
        gz, gb, gx = torch.zeros_like(z), torch.zeros_like(bias), torch.zeros_like(x)
        for rows in torch.arange(z.shape[1]).split(ctx.block):
            s = _ConcreteMatmul.slab(z, bias, mask, rows, ctx.lam, ctx.seed)
            gx += s.transpose(1, 2) @ gout[:, rows]
            dlogit = (gout[:, rows] @ x.transpose(1, 2)) * s * (1 - s) / ctx.lam  # zero off valid pairs
            gz[:, rows] += dlogit @ z * scale
            gz += dlogit.transpose(1, 2) @ z[:, rows] * scale
            gb += dlogit.sum((1, 2), keepdim=True)
        return gz, gb, gx, None, None, None, None


class ImplicitAdjacency:
    """A relaxed low-rank adjacency that is only ever used through ``@`` and never stored."""

    def __init__(self, z: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, lam: float, seed: int,
                 block: int = 256) -> None:
        self.z, self.bias, self.mask, self.lam, self.seed, self.block = z, bias, mask, lam, seed, block

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return _ConcreteMatmul.apply(self.z, self.bias, x, self.mask, self.lam, self.seed, self.block)

    def density(self) -> torch.Tensor:
        """mean(S) over valid off-diagonal pairs, as 1^T S 1 / #pairs (one more blockwise pass)."""
        ones = torch.ones(*self.mask.shape, 1)
        total = (self @ ones).sum()
        sizes = self.mask.sum(1).float()
        return total / (sizes * (sizes - 1)).sum().clamp(min=1.0)

    def dense(self) -> torch.Tensor:
        """The full (G, n, n) matrix (tests and small n only)."""
        rows = torch.arange(self.z.shape[1])
        return _ConcreteMatmul.slab(self.z, self.bias, self.mask, rows, self.lam, self.seed)
