"""Loss functions of RAHFL (arXiv 2503.09206) and AugHFL (ICCV 2023), as pure functions.

Each function takes tensors and returns a scalar tensor; none holds state, so trainers and strategies
(local DCL learning, AsymHFL's collaborative step, AugHFL's weighted alignment) share them and the
unit tests can check each against a hand computation. Formulas follow the official code as described
in ``shared/specs/rahfl.md`` §4, §5 and §9:

* :func:`jsd` -- AugMix's Jensen-Shannon consistency term (Hendrycks et al., ICLR 2020 code);
* :func:`supcon` -- supervised contrastive loss (Khosla et al., NeurIPS 2020, ``SupConLoss``,
  ``contrast_mode='all'``), including the ``temperature / base_temperature`` factor;
* :func:`similarity_kl` -- RAHFL's similarity-distribution term L_sim of DCL;
* :func:`dcl_loss` -- L_DCL = L_SupCon + beta * L_sim;
* :func:`collab_kl` -- AsymHFL's collaborative loss, the mean KL from each selected peer;
* :func:`weighted_kl` and :func:`robustness_weights` -- AugHFL's robustness-weighted alignment.

KL divergences use ``F.kl_div(log q, p, reduction="batchmean")`` = (1/B) sum_b sum_c p log(p / q),
with 0 log 0 = 0, exactly as the official code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def kl(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = (1/B) sum_b sum_c p_bc (log p_bc - log q_bc), given probabilities p and log q."""
    return F.kl_div(log_q, p, reduction="batchmean")


def jsd(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon consistency of three predictive distributions (AugMix's official code).

    M = clamp((p0 + p1 + p2) / 3, 1e-7, 1);  JSD = (1/3) * [KL(p0||M) + KL(p1||M) + KL(p2||M)],
    each KL batch-mean. The clamp keeps log M finite when all three are one-hot on different classes.
    """
    log_m = torch.clamp((p0 + p1 + p2) / 3.0, 1e-7, 1.0).log()
    return (kl(p0, log_m) + kl(p1, log_m) + kl(p2, log_m)) / 3.0


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.2,
           base_temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss over V views, every view an anchor (``contrast_mode='all'``).

    ``features``: (B, V, D), L2-normalised. With z_i the N = B*V stacked feature vectors, A(i) all
    indices but i and P(i) those in A(i) with the label of i::

        L = (1/N) sum_i  -(tau / tau_base) * (1/|P(i)|) sum_{p in P(i)}
                log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )

    Every anchor has at least its other views as positives when V >= 2. The row maximum is
    subtracted before exponentiating (numerical stability; it cancels in the ratio).
    """
    b, v, _ = features.shape
    z = torch.cat(torch.unbind(features, dim=1), dim=0)  # (V*B, D), view-major as in SupConLoss
    lab = labels.reshape(-1).repeat(v)
    logits = z @ z.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    not_self = ~torch.eye(b * v, dtype=torch.bool, device=z.device)
    positive = (lab[:, None] == lab[None, :]) & not_self
    log_denominator = torch.logsumexp(logits.masked_fill(~not_self, float("-inf")), dim=1, keepdim=True)
    log_prob = logits - log_denominator
    n_pos = positive.sum(1).clamp_min(1)
    mean_log_prob_pos = (log_prob * positive).sum(1) / n_pos
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


def similarity_kl(original: torch.Tensor, weak: torch.Tensor, strong: torch.Tensor,
                  temperature: float = 0.2) -> torch.Tensor:
    """RAHFL's L_sim: the strong view's similarity distribution should match the weak view's.

    With C = [weak; original] (2B, D) and s_a = a @ C^T for a in {weak, strong}::

        P_a = softmax(exp(s_a) / temperature)   (row-wise over the 2B entries)
        L_sim = KL(stopgrad(P_weak) || P_strong) = (1/B) sum_b sum_j P_w (log P_w - log(P_s + 1e-9))

    Self-similarities are not masked (official code).
    """
    contrast = torch.cat([weak, original], dim=0)
    p_weak = F.softmax(torch.exp(weak @ contrast.T) / temperature, dim=1)
    p_strong = F.softmax(torch.exp(strong @ contrast.T) / temperature, dim=1)
    return kl(p_weak.detach(), torch.log(p_strong + 1e-9))


def dcl_loss(original: torch.Tensor, weak: torch.Tensor, strong: torch.Tensor, labels: torch.Tensor,
             temperature: float = 0.2, base_temperature: float = 0.07, beta: float = 1.0,
             sim_temperature: float = 0.2) -> torch.Tensor:
    """L_DCL = SupCon({original, weak}; labels) + beta * L_sim(original, weak, strong).

    All three feature batches are (B, D) and L2-normalised: original = f(x0), weak = f(x3),
    strong = f(x1) in RAHFL's local learning.
    """
    con = supcon(torch.stack([original, weak], dim=1), labels, temperature, base_temperature)
    return con + beta * similarity_kl(original, weak, strong, sim_temperature)


def collab_kl(student_logits: torch.Tensor, peer_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """AsymHFL's collaborative loss of client k: (1/|S_k|) sum_{j in S_k} KL(p_j || p_k), batch-mean.

    ``peer_probs`` are the selected peers' (detached) softmax outputs on the same public batch.
    """
    if len(peer_probs) == 0:
        raise ValueError("collab_kl: no peers; a client with an empty selection does no update")
    weights = torch.full((len(peer_probs),), 1.0 / len(peer_probs))
    return weighted_kl(student_logits, peer_probs, weights)


def weighted_kl(student_logits: torch.Tensor, peer_probs: Sequence[torch.Tensor], weights: torch.Tensor,
                paper_code: bool = False) -> torch.Tensor:
    """sum_j w_j KL(p_j || p_k): AugHFL's robustness-weighted alignment (and, with w = 1/|S|, AsymHFL's).

    ``paper_code=True`` reproduces the official AugHFL bug: the student's log-probabilities are
    clamped to [1e-7, 1] before the KL, which makes them a constant and the gradient zero.
    """
    if len(peer_probs) != len(weights):
        raise ValueError(f"weighted_kl: {len(peer_probs)} peers but {len(weights)} weights")
    log_p = F.log_softmax(student_logits, dim=1)
    if paper_code:
        log_p = torch.clamp(log_p, 1e-7, 1.0)
    terms = torch.stack([kl(p, log_p) for p in peer_probs])
    return (weights.to(terms) * terms).sum()


def robustness_weights(clean: Sequence[torch.Tensor], aug1: Sequence[torch.Tensor],
                       aug2: Sequence[torch.Tensor]) -> torch.Tensor:
    """AugHFL's client weights from each client's probabilities on clean and two augmented batches.

    w_i = u_i / sum_k u_k with u_i = 1 / [KL(p_clean,i || p_aug1,i) + KL(p_clean,i || p_aug2,i)]:
    a client whose predictions move less under augmentation is trusted more. The denominator is
    floored at 1e-12 so a perfectly invariant client gets a large but finite weight.
    """
    raw = torch.stack([
        1.0 / (kl(c, a1.clamp_min(1e-12).log()) + kl(c, a2.clamp_min(1e-12).log())).clamp_min(1e-12)
        for c, a1, a2 in zip(clean, aug1, aug2, strict=True)
    ])
    return raw / raw.sum()
