"""The array side of PAS (Personality Activation Search, Zhu et al. 2025): labels, probes, directions.

Kept free of models and prompts so each step can be tested with hand-made activations. The steps
follow the official code (``PAlign/pas.py``) with three deliberate differences, all documented:
the 60/40 probe split is drawn from a seeded generator (the original uses the unseeded global numpy
state); ties in probe accuracy are broken by the lower flat head index (a stable sort) so the
ranking is reproducible; and the probes are solved to the exact optimum of the original's objective
(scikit-learn's default solver stops at tol=1e-4, which changes one validation prediction on about
one head in ten on SmolLM2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from persona.steering import HeadShift


def contrast_labels(agreement: np.ndarray, agree: Sequence[bool] = (True, False)) -> tuple[np.ndarray, np.ndarray]:
    """Labels for each known item's contrast prompts, from the subject's answers.

    ``agreement`` holds one answer per item on the 1..5 scale of agreement with the item text
    (5 = Very Accurate); 0 means missing. ``agree[v]`` says whether contrast variant ``v`` answers with the
    agreeing option (PAlign: ``(True, False)`` for the A- and E-answered prompt). Items answered 0 or 3 are
    dropped; for a subject who agrees (4-5) the agreeing variants are labelled 1 and the disagreeing ones
    0, and the reverse for 1-2. Returns ``(kept_item_indices, labels)`` with labels ordered item by item,
    variant by variant, matching ``pair_activations``.
    """
    agreement = np.asarray(agreement)
    kept = np.flatnonzero((agreement != 0) & (agreement != 3))
    agrees = (agreement[kept] > 3).astype(int)[:, None]
    variant = np.asarray(agree, dtype=bool)[None, :]
    labels = np.where(variant, agrees, 1 - agrees)
    return kept, labels.reshape(-1)


def pair_activations(activations: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Select kept items from ``(n_items, V, L, H, D)`` contrast activations -> ``(V * n_kept, L, H, D)``."""
    return activations[kept].reshape(-1, *activations.shape[2:])


def head_count(share: float, n_heads: int) -> int:
    """K as a share of all heads (PAlign's 24 of Llama-3-8B's 1,024 is 2.3%), at least one head."""
    if not 0 < share <= 1:
        raise ValueError(f"k_share must be in (0, 1], got {share!r}")
    return max(1, int(round(share * n_heads)))


def fit_logistic_batched(
    x: np.ndarray, y: np.ndarray, *, c: float = 1.0, tol: float = 1e-8, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """L2-regularised logistic regressions for many feature sets at once: ``x`` is ``(G, n, d)``, ``y`` ``(n,)``.

    Minimises, per group, ``c * sum(logloss) + 0.5 * ||w||^2`` with an unpenalised intercept: the
    objective of scikit-learn's default ``LogisticRegression(C=c)``, which the original fits one head
    at a time. The problem is strictly convex, so damped Newton steps reach the same optimum for all
    groups in a few dozen batched matrix operations instead of one solver run per head.

    Safeguards, for features with large values and more dimensions than samples (Gemma-3-270M: head
    width 256, activations up to |46|): a step is only taken when it does not increase a group's objective
    (halving it up to 40 times, else the group keeps its weights); a Hessian that cannot be factorised (Cholesky) is
    damped (Levenberg-Marquardt) until it can; and a group that has not converged after ``max_iter``
    steps is refitted alone with scikit-learn's solver at a tight tolerance. Returns ``(weights (G, d),
    intercepts (G,))``.
    """
    x64 = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    g, n, d = x64.shape
    xa = torch.cat([x64, torch.ones(g, n, 1, dtype=torch.float64)], dim=2)  # intercept column last
    target = torch.as_tensor(np.asarray(y), dtype=torch.float64).expand(g, n)
    penalty = torch.ones(d + 1, dtype=torch.float64)
    penalty[-1] = 0.0
    eye = torch.eye(d + 1, dtype=torch.float64)

    def objective(w: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("gnd,gd->gn", xa, w)
        loss = torch.nn.functional.softplus(z) - target * z  # -log-likelihood, numerically stable
        return c * loss.sum(dim=1) + 0.5 * (penalty * w * w).sum(dim=1)

    def gradient(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.sigmoid(torch.einsum("gnd,gd->gn", xa, w))
        return c * torch.einsum("gnd,gn->gd", xa, p - target) + penalty * w, p

    w = torch.zeros(g, d + 1, dtype=torch.float64)
    current = objective(w)
    converged = torch.zeros(g, dtype=torch.bool)
    for _ in range(max_iter):
        grad, p = gradient(w)
        hess = c * torch.einsum("gnd,gn,gne->gde", xa, p * (1 - p), xa) + torch.diag_embed(penalty.expand(g, -1))
        damping = 1e-10
        while True:  # the intercept has no ridge term: damp until every system solves
            step, bad = _solve_spd(hess + damping * eye, grad)
            if not bad.any() or damping > 1e6:
                break
            damping *= 100
        step = torch.where(bad[:, None], grad, step)  # still unsolvable: a gradient step, line-searched below
        scale = torch.ones(g, dtype=torch.float64)
        accept = torch.zeros(g, dtype=torch.bool)
        for _ in range(40):  # backtracking, per group: never accept a step that increases the objective
            trial = objective(w - scale[:, None] * step)
            ok = torch.isfinite(trial) & (trial <= current + 1e-12 * current.abs())
            accept |= ok
            if accept.all():
                break
            scale = torch.where(accept, scale, scale / 2)
        move = torch.where(accept[:, None], scale[:, None] * step, torch.zeros_like(step))
        w = w - move
        current = objective(w)
        converged = accept & (move.abs().amax(dim=1) < tol)  # a refused step is no convergence
        if converged.all():
            break
    weights, intercepts = w[:, :d].numpy().copy(), w[:, d].numpy().copy()
    for group in np.flatnonzero(~converged.numpy()):
        from sklearn.linear_model import LogisticRegression

        fallback = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(np.asarray(x)[group], np.asarray(y))
        weights[group], intercepts[group] = fallback.coef_[0], fallback.intercept_[0]
    return weights, intercepts


def _solve_spd(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the batched symmetric systems ``a x = b``; return ``(x, bad)`` with ``bad`` per group.

    A Newton system of a convex objective is symmetric positive (semi-)definite, so a Cholesky
    factorisation is the right solver, and ``cholesky_ex`` reports a failure per group instead of
    raising. (The general LU path, ``solve_ex``, was seen to raise from inside MKL on a finite, well
    conditioned batch once a bfloat16 model had been loaded in the same process.)
    """
    factor, info = torch.linalg.cholesky_ex(a)
    bad = info != 0
    factor = torch.where(bad[:, None, None], torch.eye(a.shape[-1], dtype=a.dtype), factor)
    x = torch.cholesky_solve(b.unsqueeze(-1), factor).squeeze(-1)
    return x, bad | ~torch.isfinite(x).all(dim=1)


def probe_accuracies(
    samples: np.ndarray, labels: np.ndarray, *, seed: int, val_fraction: float = 0.4
) -> np.ndarray:
    """Fit one logistic probe per (layer, head) on a seeded sample split; return ``(L, H, 2)`` accuracies.

    ``[..., 0]`` is validation and ``[..., 1]`` training accuracy, as in the original. Like the
    original, the split is over samples (an item's A- and E-prompt may fall on different sides).
    The probes are the original's (scikit-learn's default logistic regression, C = 1), fitted for all
    heads at once by ``fit_logistic_batched``.
    """
    n, n_layers, n_heads, head_dim = samples.shape
    rng = np.random.default_rng(seed)
    train = rng.choice(n, size=int(n * (1 - val_fraction)), replace=False)
    val = np.setdiff1d(np.arange(n), train)
    y_train, y_val = labels[train], labels[val]
    accs = np.zeros((n_layers, n_heads, 2))
    if len(np.unique(y_train)) < 2:  # a subject who agrees with everything: the probe is a constant
        accs[..., 1] = 1.0
        accs[..., 0] = np.mean(y_val == y_train[0]) if len(val) else np.nan
        return accs
    heads = samples.reshape(n, n_layers * n_heads, head_dim).transpose(1, 0, 2)  # (G, n, d)
    weights, intercepts = fit_logistic_batched(heads[:, train], y_train)

    def accuracy(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
        logits = np.einsum("gnd,gd->gn", heads[:, rows].astype(np.float64), weights) + intercepts[:, None]
        return ((logits > 0).astype(int) == y).mean(axis=1)

    accs[..., 1] = accuracy(train, y_train).reshape(n_layers, n_heads)
    accs[..., 0] = accuracy(val, y_val).reshape(n_layers, n_heads) if len(val) else np.nan
    return accs


def rank_heads(accs: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Top-``k`` (layer, head) by the mean of validation and training accuracy; ties -> lower index."""
    n_layers, n_heads, _ = accs.shape
    score = np.nan_to_num(accs.mean(axis=2), nan=-1.0).reshape(-1)
    order = np.argsort(-score, kind="stable")[:k]
    return [(int(i // n_heads), int(i % n_heads)) for i in order]


@dataclass(frozen=True)
class PASDirections:
    """Chosen heads with their unit mass-mean direction and the std of the samples' projections."""

    heads: tuple[tuple[int, int], ...]
    directions: np.ndarray  # (k, head_dim), unit norm
    stds: np.ndarray  # (k,)
    accuracies: np.ndarray  # (L, H, 2) probe accuracies behind the ranking

    def frame(self) -> pd.DataFrame:
        """One row per chosen head (layer, head, std, d0..d{D-1}): what a fit keeps, as a table to store."""
        out = pd.DataFrame(self.directions, columns=[f"d{j}" for j in range(self.directions.shape[1])])
        out.insert(0, "std", self.stds)
        out.insert(0, "head", [h for _, h in self.heads])
        out.insert(0, "layer", [layer for layer, _ in self.heads])
        return out

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "PASDirections":
        """The directions a stored ``frame()`` describes (probe accuracies are not kept)."""
        dims = [c for c in frame.columns if c.startswith("d") and c[1:].isdigit()]
        return cls(tuple(zip(frame["layer"].astype(int), frame["head"].astype(int))),
                   frame[dims].to_numpy(float), frame["std"].to_numpy(float), np.full((0, 0, 2), np.nan))

    def shifts(self, alpha: float) -> list[HeadShift]:
        """The intervention at strength ``alpha``: ``alpha * std * direction`` on each chosen head."""
        if alpha == 0:
            return []
        return [
            HeadShift(layer, head, alpha * std * direction)
            for (layer, head), direction, std in zip(self.heads, self.directions, self.stds)
        ]


def mass_mean_directions(samples: np.ndarray, labels: np.ndarray, heads: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per head: normalised difference of class means over all samples, and std of projections on it."""
    directions, stds = [], []
    for layer, head in heads:
        x = samples[:, layer, head].astype(np.float64)
        if labels.min() == labels.max():  # one class only: no contrast, no shift
            direction = np.zeros(x.shape[1])
        else:
            diff = x[labels == 1].mean(axis=0) - x[labels == 0].mean(axis=0)
            norm = np.linalg.norm(diff)
            direction = diff / norm if norm > 0 else np.zeros_like(diff)
        directions.append(direction)
        stds.append(float(np.std(x @ direction)))
    return np.array(directions), np.array(stds)


def fit_pas(activations: np.ndarray, agreement: np.ndarray, *, agree: Sequence[bool] = (True, False),
            k: int = 24, seed: int = 0) -> PASDirections:
    """All per-subject PAS steps: labels -> probes -> top-k heads -> mass-mean directions and scales.

    ``activations`` are the subject-independent contrast activations ``(n_items, V, L, H, D)``, ``agree[v]``
    whether variant ``v`` answers with the agreeing option (PAlign's V = 2: [A-answered, E-answered]);
    ``agreement`` the subject's answers to the same items.
    """
    kept, labels = contrast_labels(agreement, agree)
    samples = pair_activations(activations, kept)
    n_layers, n_heads = activations.shape[2:4]
    if len(kept) < 3:
        empty = np.zeros((0, activations.shape[-1]))
        return PASDirections((), empty, np.zeros(0), np.full((n_layers, n_heads, 2), np.nan))
    accs = probe_accuracies(samples, labels, seed=seed)
    heads = rank_heads(accs, min(k, n_layers * n_heads))
    directions, stds = mass_mean_directions(samples, labels, heads)
    return PASDirections(tuple(heads), directions, stds, accs)
