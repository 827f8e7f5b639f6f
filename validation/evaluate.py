"""Per trained model: symmetry statistics, theory predictions and their errors (docs/theory.md §2–§4, §8).

For a :class:`rugtheory.validation.train.TrainedModel` at ``(n, m, p)`` with ``r = m/n``:

- ``measured`` = its held-out loss (fresh samples, with SE);
- the symmetry statistics of docs/theory.md §2 from ``rugtheory.theory.weights.weight_statistics`` (prefixed
  ``sym_``) and ``predicted`` = ``rugtheory.theory.weights.predicted_loss_from_weights(W, b, p)``, the
  symmetric large-N loss averaged over the model's own rows;
- ``exact_finite_n``: the exact expected loss of the same weights at finite n, no Gaussian step
  (docs/theory.md §7, ``rugtheory.theory.finite_n.exact_loss_from_weights``): it must match ``measured`` within
  its standard error, and ``exact_finite_n − predicted`` is the non-Gaussian finite-n effect;
- ``lstar`` = L*(p, r) with ``a_star, b_star, sigma_star`` (``rugtheory.theory.optimum``), and the baselines
  ``linear_loss = (1 − r) v`` and ``zero_loss = p/3``;
- ``rug_loss ± rug_se``: the Persian rug at the same ``(n, m)`` (Hadamard rows when ``n`` is a power
  of two, the real Fourier frame otherwise) with the theory scalars, by streamed Monte Carlo
  (``rugtheory.constructions.rug_monte_carlo``);
- relative errors ``rel_err_X = (X − measured) / measured`` for X in predicted, exact_finite_n, lstar,
  rug, and
  ``gap_se_X``: that error in units of the standard error of the difference.

A part whose module is missing, or that fails, is recorded as ``<part>_status = "not computed: ..."``
with NaN values, never silently dropped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["evaluate_model", "evaluate_weights"]


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def evaluate_weights(
    W_in: np.ndarray, W_out: np.ndarray, b: np.ndarray, p: float, *, measured: float, measured_se: float,
    rug: str = "theory", rug_rel_se: float = 0.01, rug_max_seconds: float = 20.0, stats_seed: int = 0,
    rug_seed: int = 0, exact: bool = True, exact_max_nodes: int = 1 << 15,
) -> dict[str, Any]:
    """Every theory comparison for one model given by its factors (see the module docstring).

    ``exact=False`` skips the finite-n inversion; ``exact_max_nodes`` caps its trapezoid nodes per
    row (its error bound, ``exact_finite_n_error``, then says how far from converged it is).
    """
    W_in = np.asarray(W_in, dtype=np.float64)
    W_out = np.asarray(W_out, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = W_in.shape
    r = m / n
    out: dict[str, Any] = {"measured": measured, "measured_se": measured_se}

    from rugtheory.theory.optimum import optimal_symmetric_loss

    opt = optimal_symmetric_loss(p, r)
    out.update(lstar=float(opt.loss), a_star=float(opt.a), b_star=float(opt.b), sigma_star=float(opt.sigma),
               theta_star=float(opt.theta), linear_loss=float(opt.linear_loss), zero_loss=float(opt.zero_loss))

    W = W_out @ W_in
    out["diag_mean"] = float(np.mean(np.diag(W)))
    from rugtheory.theory.weights import weight_statistics

    stats = weight_statistics(W, b, p, seed=stats_seed)
    out.update({f"sym_{k}": float(v) for k, v in stats.summary().items()})
    out["predicted"] = stats.predicted_loss  # = predicted_loss_from_weights(W, b, p), computed once
    out["weights_status"] = "ok"

    out.update(exact_finite_n=math.nan, exact_finite_n_error=math.nan)
    if not exact:
        out["exact_status"] = "not computed: exact=False"
    else:
        try:
            from rugtheory.theory.finite_n import exact_loss_from_weights

            # tol is absolute per row; held-out SEs of 1e5 samples are >= ~1e-6 wherever losses are
            # >= 1e-4, so 1e-7 is well below them (and ~10x cheaper than the default 1e-11).
            res = exact_loss_from_weights(W, b, p, tol=1e-7, max_nodes=exact_max_nodes)
            out.update(exact_finite_n=float(res.loss), exact_finite_n_error=float(res.error))
            out["exact_status"] = "ok"
        except ImportError as exc:
            out["exact_status"] = f"not computed: {exc}"

    out["rug_loss"] = out["rug_se"] = math.nan
    if rug == "none":
        out["rug_status"] = "not computed: rug='none'"
    else:
        try:
            from rugtheory.constructions.persian_rug import persian_rug, theory_scalars
            from rugtheory.constructions.rug_monte_carlo import rug_loss_monte_carlo

            kind = "hadamard" if _is_power_of_two(n) else "fourier"
            model = persian_rug(n, m, seed=rug_seed, kind=kind)
            sc = theory_scalars(model, p)
            est = rug_loss_monte_carlo(model, p, alpha=sc.alpha, beta=sc.beta, seed=rug_seed, rel_se=rug_rel_se,
                                       max_seconds=rug_max_seconds)
            out.update(rug_loss=float(est.loss), rug_se=float(est.se), rug_kind=kind, rug_samples=int(est.n_samples))
            out["rug_status"] = "ok"
        except ImportError as exc:
            out["rug_status"] = f"not computed: {exc}"

    for key, se in (("predicted", 0.0), ("exact_finite_n", out["exact_finite_n_error"]), ("lstar", 0.0),
                    ("rug", out["rug_se"])):
        value = out["rug_loss"] if key == "rug" else out[key]
        if math.isfinite(measured) and measured > 0 and math.isfinite(value):
            out[f"rel_err_{key}"] = (value - measured) / measured
            total_se = math.hypot(measured_se, se) if math.isfinite(se) else measured_se
            out[f"gap_se_{key}"] = (value - measured) / total_se if total_se > 0 else math.nan
        else:
            out[f"rel_err_{key}"] = out[f"gap_se_{key}"] = math.nan
    return out


def evaluate_model(
    model: Any, *, rug: str = "theory", rug_rel_se: float = 0.01, rug_max_seconds: float = 20.0,
    stats_seed: int = 0, exact: bool = True, exact_max_nodes: int = 1 << 15,
) -> dict[str, Any]:
    """:func:`evaluate_weights` for a :class:`rugtheory.validation.train.TrainedModel`
    (non-finite ones: status only)."""
    c = model.config
    base = {"n": c.n, "m": c.m, "r": c.m / c.n, "p": c.p, "seed": c.seed, "status": model.status}
    if model.status != "ok" or not (np.all(np.isfinite(model.W_in)) and np.all(np.isfinite(model.W_out))):
        return base | {"evaluation_status": "not computed: model status " + model.status}
    return base | evaluate_weights(
        model.W_in, model.W_out, model.b, c.p, measured=model.heldout_loss, measured_se=model.heldout_se,
        rug=rug, rug_rel_se=rug_rel_se, rug_max_seconds=rug_max_seconds, stats_seed=stats_seed,
        rug_seed=c.seed, exact=exact, exact_max_nodes=exact_max_nodes,
    ) | {"evaluation_status": "ok"}
