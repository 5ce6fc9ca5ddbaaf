"""Score semantics: the artifact serves raw logits; this is the documented map to [0, 1].

``p = 1 / (1 + exp(-(logit / temperature + bias)))``. Without judged data it is the plain sigmoid
(temperature 1, bias 0) — a cross-encoder trained with BCE on 0..1 targets already means this.
With ``--eval-data`` the two numbers are fitted by logistic regression of the normalised gains
(gain / largest gain, so Home Depot's 1..3 grades become 0, 0.17, ..., 1) on the exported model's
logits, minimising cross-entropy with these soft targets: a model trained with margin or listwise
losses has logits on an arbitrary scale, and the fit puts them back on a probability scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FORMULA = "p = 1 / (1 + exp(-(logit / temperature + bias)))"


def sigmoid_map() -> dict[str, Any]:
    return {"method": "sigmoid", "temperature": 1.0, "bias": 0.0, "formula": FORMULA}


def fit_probability(logits: np.ndarray, gains: np.ndarray) -> dict[str, Any]:
    """Temperature and bias fitted on (logit, normalised gain) pairs; the plain sigmoid if the fit
    would invert the order (a model whose logits fall as relevance rises) or the gains are constant."""
    from scipy.optimize import minimize

    x = np.asarray(logits, dtype=np.float64)
    g = np.asarray(gains, dtype=np.float64)
    if g.max() <= g.min():
        return sigmoid_map() | {"note": "gains are constant: nothing to fit"}
    y = (g - g.min()) / (g.max() - g.min())
    scale = x.std() or 1.0

    def loss(params: np.ndarray) -> float:
        z = params[0] * x / scale + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # soft-target binary cross-entropy

    fit = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B")
    slope = fit.x[0] / scale
    if slope <= 0:
        return sigmoid_map() | {"note": "fitted slope is not positive: logits do not rise with relevance"}
    return {
        "method": "fitted",
        "temperature": float(1.0 / slope),
        "bias": float(fit.x[1]),
        "formula": FORMULA,
        "fitted_on_pairs": int(len(x)),
        "cross_entropy": float(fit.fun),
    }
