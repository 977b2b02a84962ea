"""Temperature scaling (Guo et al. 2017): one scalar that makes confidences honest."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

# A calibration set the model separates perfectly drives the NLL-optimal temperature towards 0
# (ever sharper confidences); such a fit says "very sure", not "infinitely sure", so it is bounded.
TEMPERATURE_RANGE = (0.1, 10.0)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature minimising validation NLL (fitted on log T, so it stays positive), kept within
    :data:`TEMPERATURE_RANGE`."""
    logits, labels = logits.detach().float().clone(), labels.detach().long().clone()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    low, high = TEMPERATURE_RANGE
    t = min(max(float(log_t.detach().exp()), low), high)
    # Never worse than no scaling (LBFGS can wander on tiny or separable sets).
    return t if nll(logits, labels, t) <= nll(logits, labels, 1.0) else 1.0


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.float() / temperature, labels.long()))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    conf, pred = probs.max(dim=1)
    correct = pred.eq(labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean() * (conf[inside].mean() - correct[inside].mean()).abs()
    return float(ece)


# --------------------------------------------------------------------------- certified decisions


def clopper_pearson_upper(errors: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound on an error rate seen as ``errors`` in ``n`` (exact binomial)."""
    from scipy.stats import beta

    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0
    return float(beta.ppf(confidence, errors + 1, n - errors))


THRESHOLD_GRID = tuple(round(1.0 - i * 0.0025, 4) for i in range(301))  # 1.0 down to 0.25


def risk_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    confidence_level: float = 0.95,
    then: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict]:
    """Risk against coverage on calibration decisions, at each threshold of a fixed grid from
    high to low: how many decisions would be automatic, how many of those wrong, and the
    one-sided upper bound on their error rate (exact binomial, Clopper-Pearson). The decisions
    must be independent draws (one per calibration photo) for the bound to hold.

    ``then`` (confidence, correct) is a second look taken only where the first falls short of
    the threshold (a glance first): at each threshold a photo is decided by the first look when
    it is sure enough, else by the second when that one is; the two-step rule is one rule with
    one threshold, so the fixed-sequence walk over the grid certifies it as it does a single look.
    """
    n = len(confidence)
    correct = correct.astype(bool)
    counts = []
    for threshold in THRESHOLD_GRID:
        chosen = confidence >= threshold
        wrong = chosen & ~correct
        if then is not None:
            second = ~chosen & (then[0] >= threshold)
            chosen, wrong = chosen | second, wrong | (second & ~then[1].astype(bool))
        counts.append((int(chosen.sum()), int(wrong.sum())))
    bounds = clopper_pearson_uppers(counts, confidence_level)
    return [
        {
            "threshold": threshold,
            "automatic": k,
            "coverage": k / max(n, 1),
            "errors": errors,
            "upper_bound": bound,
        }
        for threshold, (k, errors), bound in zip(THRESHOLD_GRID, counts, bounds)
    ]


def clopper_pearson_uppers(counts: list[tuple[int, int]], confidence: float = 0.95) -> list[float]:
    """:func:`clopper_pearson_upper` of many (decisions, errors) at once (one call into SciPy:
    a curve's 301 bounds one by one took most of a report's drawing time)."""
    from scipy.stats import beta

    n, errors = np.array(counts, dtype=float).reshape(-1, 2).T
    bounded = (n > 0) & (errors < n)
    out = np.ones(len(n))
    out[bounded] = beta.ppf(confidence, errors[bounded] + 1, n[bounded] - errors[bounded])
    return [float(b) for b in out]


def min_decisions(max_error: float, confidence_level: float = 0.95) -> int:
    """The fewest decisions, all right, whose upper error bound is at most ``max_error``."""
    return int(np.ceil(np.log(1 - confidence_level) / np.log(1 - max_error)))


def certified_threshold(curve: list[dict], max_error: float) -> tuple[float, dict | None]:
    """The threshold for automatic decisions with error at most ``max_error`` (95% confidence).

    Fixed-sequence testing (Learn-then-Test, Angelopoulos et al. 2021): walk the grid from the
    highest threshold down and stop at the first whose bound exceeds the target; the last one
    that passed is certified. Walking on past a failure would test many thresholds and keep
    the luckiest. The walk starts where enough decisions are automatic for a bound that low to
    be possible at all, which depends on the confidences only, never on which were right.
    Returns a threshold above 1 (nothing decided alone) when none passes.
    """
    best, enough = None, min_decisions(max_error)
    for row in curve:
        if row["automatic"] < enough:
            continue
        if row["upper_bound"] > max_error:
            break
        best = row
    if best is None:
        return 1.0 + 1e-9, None
    return best["threshold"], best
