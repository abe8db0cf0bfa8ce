"""Client-side data selection by CoT-Kinetics energy (arXiv 2505.13408), our federated use of the scorer.

Before local training a client scores its own reasoning samples with the current model and keeps
(or re-weights) them by the oriented score, so traces whose reasoning looks unsound contribute less
to the local update. This mirrors how a third-party RLVR framework (DE-Venus) uses CoT-Kinetics as a
data-selection signal; the paper itself only scores. The orientation is fitted on a validation split
(by the client or the server) and passed in ``cfg.scorer.orientation``; selection refuses to guess it.

Modes (``cfg.selection.mode``):

* ``keep_fraction``: keep the ``keep_fraction`` of samples with the lowest risk, weight 1;
* ``threshold``: keep samples whose risk is <= ``threshold``, weight 1;
* ``weight``: keep all, weight_i proportional to exp(-z_i / temperature) with z the standardised
  risk, normalised to mean 1 so the effective learning rate is unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fedsim.cot.config import CoTConfig
from fedsim.cot.scorer import EnergyFn, ReasoningSample, score_samples
from fedsim.errors import ConfigError


def risks(model, tok, samples: Sequence[ReasoningSample], cfg: CoTConfig,
          energy_fn: EnergyFn | None = None) -> np.ndarray:
    """Oriented score per sample: higher = more likely unsound."""
    sign = cfg.scorer.orientation
    if sign is None:
        raise ConfigError("cot.scorer.orientation: not fitted; fit it on a validation split "
                          "(fedsim.cot.scorer.fit_orientations) or set 1 / -1")
    scores = score_samples(model, tok, samples, cfg.scorer, energy_fn)
    if cfg.selection.score not in scores:
        raise ConfigError(f"cot.selection.score: unknown {cfg.selection.score!r}; "
                          f"choose one of {sorted(scores)}")
    values = sign * scores[cfg.selection.score]
    return np.where(np.isfinite(values), values, np.inf)  # an unscorable sample is never preferred


def select(risk: np.ndarray, cfg: CoTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices kept and their weights, from oriented risks."""
    sel, n = cfg.selection, len(risk)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    if sel.mode == "keep_fraction":
        k = max(1, math.ceil(sel.keep_fraction * n))
        kept = np.sort(np.argsort(risk, kind="stable")[:k])
        return kept, np.ones(len(kept))
    if sel.mode == "threshold":
        kept = np.flatnonzero(risk <= sel.threshold)
        return kept, np.ones(len(kept))
    finite = np.isfinite(risk)
    z = np.full(n, np.inf)
    if finite.any():
        r = risk[finite]
        z[finite] = (r - r.mean()) / (r.std() + 1e-12)
    w = np.exp(-(z - z[finite].min(initial=0.0)) / sel.temperature) if finite.any() else np.ones(n)
    kept = np.flatnonzero(w > 0)
    w = w[kept]
    return kept, w * len(w) / w.sum()


def score_and_select(model, tok, samples: Sequence[ReasoningSample], cfg: CoTConfig,
                     energy_fn: EnergyFn | None = None) -> tuple[list[ReasoningSample], list[float],
                                                                   dict[str, Any]]:
    """Score a client's local samples and keep/weight them; returns (kept, weights, report)."""
    t0 = time.perf_counter()
    risk = risks(model, tok, samples, cfg, energy_fn)
    kept, weights = select(risk, cfg)
    finite = risk[np.isfinite(risk)]
    report = {
        "n_samples": len(samples), "n_kept": len(kept),
        "kept_fraction": len(kept) / max(1, len(samples)),
        "score": cfg.selection.score, "mode": cfg.selection.mode, "orientation": cfg.scorer.orientation,
        "risk_mean": float(finite.mean()) if len(finite) else float("nan"),
        "risk_mean_kept": float(np.mean([risk[i] for i in kept if np.isfinite(risk[i])]))
        if len(kept) else float("nan"),
        "n_unscorable": int(len(risk) - len(finite)),
        "seconds": time.perf_counter() - t0,
    }
    return [samples[i] for i in kept], [float(w) for w in weights], report


def weighted_lm_loss(model, tok, samples: Sequence[ReasoningSample],
                     weights: Sequence[float]) -> torch.Tensor:
    """Mean over samples of weight_i x (token-mean NLL of reasoning + answer given the prompt).

    The prompt is context only (its tokens carry no loss), so the selection weight scales exactly
    the part of the sample whose soundness was scored.
    """
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows, starts = [], []
    for s in samples:
        ids = list(tok(s.prompt + s.reasoning + s.answer)["input_ids"])
        if tok.eos_token_id is not None:
            ids.append(tok.eos_token_id)
        rows.append(ids)
        starts.append(len(tok(s.prompt)["input_ids"]))
    width = max(map(len, rows))
    device = next(model.parameters()).device
    ids = torch.full((len(rows), width), pad, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, device=device)
        mask[i, starts[i]: len(row)] = True
    lengths = torch.tensor([len(r) for r in rows], device=device)
    attention = torch.arange(width, device=device)[None, :] < lengths[:, None]
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    target = mask[:, 1:]
    per_sample = (nll * target).sum(1) / target.sum(1).clamp_min(1)
    w = torch.tensor(list(weights), dtype=per_sample.dtype, device=device)
    return (w * per_sample).sum() / max(len(rows), 1)


def train_on_selected(model, tok, samples: Sequence[ReasoningSample], weights: Sequence[float],
                      steps: int, lr: float = 1e-3, batch_size: int = 16, seed: int = 0) -> float:
    """A client's local update on its selected, weighted samples; returns the mean training loss."""
    if not samples or steps <= 0:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(samples), (min(batch_size, len(samples)),), generator=gen).tolist()
        loss = weighted_lm_loss(model, tok, [samples[i] for i in idx], [weights[i] for i in idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return float(np.mean(losses))
