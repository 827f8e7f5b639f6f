r"""Property-test your own model against the theory (issue 14).

For a model of the shape ``y = ReLU(W_out W_in x + b)`` on ``x_i = Bernoulli(p)·Uniform[0, 1)``
(docs/theory.md §1), trained with any framework, this module offers:

- **hypothesis strategies** for the hyperparameters the theory covers (:func:`hyperparameters`)
  and for the weights of each construction (:func:`persian_rug_weights`,
  :func:`paired_rug_weights`, :func:`antipodal_pair_weights`, :func:`untied_pair_weights`,
  :func:`gaussian_weights`, :func:`any_weights`);
- **assertions** that raise ``AssertionError`` with a multi-line report (predicted, measured, the
  tolerance and why): :func:`assert_loss_matches_weights` (a measured loss is the exact finite-n
  loss of the weights, §7), :func:`assert_near_prediction` (a measured loss lies in the band the
  theory predicts at ``(n, m, p)``, §8 and §10) and :func:`assert_symmetric_statistics` (the row
  statistics of §2 are those of the symmetric regime). On success each returns its
  :class:`CheckReport`;
- :func:`held_out_loss`: the loss ± SE on fresh samples, computed in numpy from the weights.

Every function accepts numpy arrays and torch tensors (anything with ``.detach()`` is converted by
``.detach().cpu()`` to float64 numpy). ``import rugtheory.testing`` imports neither torch nor
hypothesis: torch is only touched through the objects you pass in, hypothesis only inside the
strategy functions (it is a test dependency, ``pip install -e ".[test]"``).

Losses are per feature, the unit of ``torch.nn.functional.mse_loss`` (docs/theory.md §1): if your
loss sums over features, divide it by n before comparing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rugtheory.theory.checks import (
    check_finite,
    check_int,
    check_probability,
    check_seed,
)

__all__ = [
    "DEFAULT_ENGINE_TOL",
    "ENUMERATION_MAX_PARTNERS",
    "NEGLIGIBLE_ENTRY",
    "Atlas",
    "ExactLoss",
    "CheckReport",
    "HeldOutLoss",
    "Hyperparameters",
    "ModelWeights",
    "antipodal_pair_weights",
    "any_weights",
    "as_numpy",
    "exact_loss",
    "assert_loss_matches_weights",
    "assert_near_prediction",
    "assert_symmetric_statistics",
    "gaussian_weights",
    "held_out_loss",
    "hyperparameters",
    "model_weights",
    "paired_rug_weights",
    "persian_rug_weights",
    "untied_pair_weights",
]

#: Target error per row of the exact finite-n engine (docs/theory.md §7, §13.6) where no standard
#: error sets the scale (the Persian rug of :func:`assert_near_prediction`, or ``se = 0``). With a
#: measured ``se`` the assertions ask for ``max(DEFAULT_ENGINE_TOL, se/20)``: the engine's error
#: then widens the tolerance by at most 0.13% and the inversion needs far fewer nodes (small p·n
#: needs many; the engine's default 1e-11 costs 10-50x more at n <= 128).
DEFAULT_ENGINE_TOL = 1e-8

#: Rows with at most this many non-zero off-diagonal entries (pairs, untied pairs, polytopes,
#: dropped or dedicated features) are summed exactly by enumerating which partners are on
#: (``enumeration_loss_from_weights``, 3^k terms): their interference has atoms, where the
#: characteristic-function inversion converges slowly and bounds its error loosely.
ENUMERATION_MAX_PARTNERS = 8
#: Off-diagonal entries below this fraction of max|W| (floating-point cancellation in W_out W_in of
#: an exact construction) do not count as partners for the enumeration route; their effect is bounded.
NEGLIGIBLE_ENTRY = 1e-12

#: An atlas of measured trained losses: ``atlas(n, r, p) -> (loss, se)`` or ``None`` where it has
#: no entry. See :func:`assert_near_prediction`.
Atlas = Callable[[int, float, float], "tuple[float, float] | None"]


# --------------------------------------------------------------------------------------------
# containers


class Hyperparameters(NamedTuple):
    """``(n, m, p)``: features, hidden units, feature probability; ``r = m/n``."""

    n: int
    m: int
    p: float

    @property
    def r(self) -> float:
        """Compression ratio ``m/n`` in (0, 1]."""
        return self.m / self.n


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """Explicit weights of one construction; unpacks as ``W_in, W_out, b, p = weights``.

    ``W_in`` is m×n, ``W_out`` n×m, ``b`` (n,), all float64. ``structure`` names the construction
    and ``large_n_loss`` is its theory loss at large n (``None`` where the theory gives none, e.g.
    random Gaussian directions); the exact loss of these finite-n weights is
    :func:`rugtheory.exact_loss_from_factors`.
    """

    W_in: np.ndarray
    W_out: np.ndarray
    b: np.ndarray
    p: float
    structure: str
    large_n_loss: float | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.W_in, self.W_out, self.b, self.p))

    @property
    def n(self) -> int:
        return int(self.W_in.shape[1])

    @property
    def m(self) -> int:
        return int(self.W_in.shape[0])

    @property
    def r(self) -> float:
        return self.m / self.n

    @property
    def W(self) -> np.ndarray:
        """The effective matrix ``W_out @ W_in`` (n×n)."""
        return self.W_out @ self.W_in

    def __repr__(self) -> str:
        extra = "" if self.large_n_loss is None else f", large_n_loss={self.large_n_loss:.6g}"
        return f"ModelWeights({self.structure!r}, n={self.n}, m={self.m}, p={self.p:.6g}{extra})"


class HeldOutLoss(NamedTuple):
    """Mean per-feature loss on fresh samples and its standard error (unpacks as ``mean, se``)."""

    mean: float
    se: float


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one assertion: what was compared, with which tolerance, and why.

    ``str(report)`` is the multi-line message; ``values`` holds the numbers by name.
    """

    title: str
    passed: bool
    lines: tuple[str, ...]
    values: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        head = f"{self.title}: {'passed' if self.passed else 'FAILED'}"
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


def _finish(report: CheckReport) -> CheckReport:
    if not report.passed:
        raise AssertionError(str(report))
    return report


# --------------------------------------------------------------------------------------------
# conversion: numpy, torch, anything with .detach()


def as_numpy(value: Any, name: str) -> np.ndarray:
    """``value`` as a finite float64 numpy array; torch tensors via ``.detach().cpu()``.

    Raises ``ValueError`` naming ``name`` for non-finite or non-numeric input.
    """
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
        if hasattr(value, "double"):  # bfloat16/float16 tensors have no numpy view
            value = value.double()
        value = value.numpy()
    return np.array(check_finite(value, name), dtype=np.float64)


def _as_scalar(value: Any, name: str) -> float:
    arr = as_numpy(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _check_factors(w_in: np.ndarray, w_out: np.ndarray | None,
                   b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes of ``(W_in, W_out, b)``; ``W_out = None`` means ``W_in`` is the n×n effective matrix."""
    if w_in.ndim != 2:
        raise ValueError(f"W_in must be a matrix (m×n), got shape {w_in.shape}")
    m, n = w_in.shape
    if w_out is None:
        if m != n:
            raise ValueError(f"with W_out=None, W_in must be the square effective matrix W, got shape {w_in.shape}")
        w_out = np.eye(n)
    if w_out.shape != (n, m):
        raise ValueError(f"W_out must have shape ({n}, {m}) (n×m) to match W_in of shape ({m}, {n}), got {w_out.shape}")
    b = np.broadcast_to(b, (n,)).copy() if b.ndim == 0 else b
    if b.shape != (n,):
        raise ValueError(f"b must have shape ({n},) to match W_in of shape ({m}, {n}), got {b.shape}")
    return w_in, w_out, b


def _linear_layers(model: Any) -> list[Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    return [mod for mod in model.modules() if isinstance(mod, torch.nn.Linear)]


def model_weights(model_or_weights: Any, *, verify_forward: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W_in, W_out, b)`` as float64 numpy from a model or from raw weights.

    Recognised, in this order:

    1. a :class:`ModelWeights`, or a tuple/list ``(W_in, W_out, b)`` (``W_out`` may be ``None``:
       then ``W_in`` is the n×n effective matrix ``W``) of arrays or tensors;
    2. any object with attributes ``W_in``, ``W_out`` and ``b`` (arrays, tensors or parameters);
    3. a torch ``nn.Module`` with exactly two ``nn.Linear`` submodules (in registration order):
       the first n→m (``W_in = first.weight``), the second m→n (``W_out = second.weight``,
       ``b = second.bias`` or zeros). A bias on the first layer is folded in exactly:
       ``ReLU(W_out (W_in x + c) + b) = ReLU(W_out W_in x + (W_out c + b))``.

    The model must compute ``ReLU(second(first(x)))``. With ``verify_forward`` (default) a module's
    own ``forward`` is called on 16 samples of the data (§1) and compared with that formula; a
    mismatch (another activation, a normalisation, tied weights used differently) raises
    ``ValueError`` instead of silently testing a different model.
    """
    obj = model_or_weights
    if isinstance(obj, ModelWeights):
        return obj.W_in, obj.W_out, obj.b
    if isinstance(obj, (tuple, list)):
        if len(obj) != 3:
            raise ValueError(f"raw weights must be a tuple (W_in, W_out, b), "
                             f"got a {type(obj).__name__} of length {len(obj)}")
        w_in = as_numpy(obj[0], "W_in")
        w_out = None if obj[1] is None else as_numpy(obj[1], "W_out")
        return _check_factors(w_in, w_out, as_numpy(obj[2], "b"))
    if all(hasattr(obj, a) for a in ("W_in", "W_out", "b")):
        w_out_attr = obj.W_out
        w_out = None if w_out_attr is None else as_numpy(w_out_attr, "W_out")
        return _check_factors(as_numpy(obj.W_in, "W_in"), w_out, as_numpy(obj.b, "b"))
    if hasattr(obj, "modules"):
        layers = _linear_layers(obj)
        if len(layers) != 2:
            raise ValueError(f"a torch module must hold exactly two nn.Linear layers (n→m, then m→n with bias), "
                             f"found {len(layers)}; or pass (W_in, W_out, b) or an object with W_in, W_out, b")
        first, second = layers
        w_in = as_numpy(first.weight, "W_in")
        w_out = as_numpy(second.weight, "W_out")
        if w_out.shape != w_in.shape[::-1]:
            raise ValueError(f"the two nn.Linear layers must be n→m then m→n, "
                             f"got weights of shapes {w_in.shape} and {w_out.shape}")
        b = np.zeros(w_out.shape[0]) if second.bias is None else as_numpy(second.bias, "b")
        if first.bias is not None:
            b = b + w_out @ as_numpy(first.bias, "first-layer bias")
        w_in, w_out, b = _check_factors(w_in, w_out, b)
        if verify_forward:
            _verify_forward(obj, w_in, w_out, b)
        return w_in, w_out, b
    raise ValueError(f"cannot read weights from a {type(obj).__name__}: pass (W_in, W_out, b), an object with "
                     "attributes W_in, W_out, b, or a torch module with two nn.Linear layers")


def _verify_forward(module: Any, w_in: np.ndarray, w_out: np.ndarray, b: np.ndarray) -> None:
    import torch  # the module is a torch module, so torch is already imported

    from rugtheory.theory.data import sample_sparse_uniform

    n = w_in.shape[1]
    x = sample_sparse_uniform(np.random.default_rng(0), (16, n), 0.5)
    param = next(module.parameters())
    with torch.no_grad():
        y = as_numpy(module(torch.as_tensor(x, dtype=param.dtype, device=param.device)), "model output")
    want = np.maximum(x @ w_in.T @ w_out.T + b, 0.0)
    # float32 forward vs float64 formula: ~1e-7 relative per term, summed over m products
    tol = 1e-4 * (1.0 + np.abs(want).max())
    if y.shape != want.shape or np.abs(y - want).max() > tol:
        diff = float("inf") if y.shape != want.shape else float(np.abs(y - want).max())
        raise ValueError(f"the module's forward is not ReLU(second(first(x))) for its two nn.Linear layers "
                         f"(max difference {diff:.3g} > {tol:.3g}); pass (W_in, W_out, b) explicitly")


# --------------------------------------------------------------------------------------------
# held-out loss


def held_out_loss(model_or_weights: Any, p: float, *, samples: int, seed: int) -> HeldOutLoss:
    """Loss ± SE of the model on ``samples`` fresh draws of x (never a training minibatch).

    ``model_or_weights`` is anything :func:`model_weights` recognises. The loss is computed in
    numpy from the weights (:func:`rugtheory.twins.montecarlo.model_loss_monte_carlo`, streamed and
    seeded by ``seed``), so it is the same for a torch, jax or numpy model, and independent of
    the framework's float32 arithmetic. ``se`` is the standard error of the mean of the
    per-sample loss ``(1/n)|y − x|²``.
    """
    from rugtheory.twins.montecarlo import model_loss_monte_carlo

    p = float(check_probability(_as_scalar(p, "p")))
    samples = check_int(samples, "samples", low=2)
    seed = check_seed(seed)
    w_in, w_out, b = model_weights(model_or_weights)
    est = model_loss_monte_carlo(w_in, w_out, b, p, n_samples=samples, seed=seed)
    return HeldOutLoss(float(est.mean), float(est.se))


# --------------------------------------------------------------------------------------------
# assertions


class ExactLoss(NamedTuple):
    """Exact finite-n loss of given weights, its error estimate, and the route that computed it."""

    loss: float
    error: float
    route: str


def exact_loss(W_in: Any, W_out: Any, b: Any, p: float, *, tol: float = DEFAULT_ENGINE_TOL,
               max_nodes: int = 1 << 15) -> ExactLoss:
    """Exact expected loss of ``ReLU(W_out W_in x + b)`` at finite n (docs/theory.md §7), never sampled.

    If every row has at most :data:`ENUMERATION_MAX_PARTNERS` non-zero off-diagonal entries (and a
    non-zero diagonal), each row is summed exactly over which partners are on
    (``rugtheory.twins.enumeration.enumeration_loss_from_weights`` on the row's partners; error =
    its rounding bound). Otherwise the exact characteristic function is inverted
    (:func:`rugtheory.exact_loss_from_factors` with ``tol`` and ``max_nodes``); its error
    estimate is returned and its ``AccuracyWarning`` is not raised (the estimate is the answer).
    ``W_out = None``: ``W_in`` is the effective n×n matrix.
    """
    import warnings

    from rugtheory.theory.finite_n import exact_loss_from_weights
    from rugtheory.twins.enumeration import enumeration_loss_from_weights

    p = float(check_probability(_as_scalar(p, "p")))
    w_in = as_numpy(W_in, "W_in")
    w_out = None if W_out is None else as_numpy(W_out, "W_out")
    w_in, w_out, b = _check_factors(w_in, w_out, as_numpy(b, "b"))
    w = w_out @ w_in
    n = w.shape[0]
    off = w.copy()
    np.fill_diagonal(off, 0.0)
    # entries at rounding level (a product W_out W_in that cancels to ~1e-17 instead of 0) are
    # partners of no consequence: dropped, with a Lipschitz bound on their effect added to the error
    negligible = np.abs(off) <= NEGLIGIBLE_ENTRY * max(1.0, float(np.abs(w).max()))
    partners = [np.flatnonzero(~row) for row in negligible]
    a = np.diag(w)
    if n >= 2 and all(s.size <= ENUMERATION_MAX_PARTNERS for s in partners) and np.all(a != 0):
        loss, err = np.empty(n), np.empty(n)
        for i, s in enumerate(partners):
            small = np.eye(s.size + 1)
            small[0, 0], small[0, 1:] = a[i], off[i, s]
            bias = np.zeros(s.size + 1)
            # the dropped entries' mean field (p/2)Σ ε stays in the bias; their fluctuation (|ξ| <= 1) moves
            # τ = c + ν by at most Σ|ε|, and |dℓ/dτ| <= 2(|a| + 2|τ| + 1) (docs/theory.md §7.2)
            dropped = np.where(negligible[i], off[i], 0.0)
            bias[0] = b[i] + 0.5 * p * dropped.sum()
            val, e = enumeration_loss_from_weights(small, bias, p, return_error=True)
            tau = abs(b[i]) + 0.5 * p * abs(off[i].sum()) + np.abs(off[i]).sum()
            loss[i] = val[0]
            err[i] = e[0] + 2.0 * (abs(a[i]) + 2.0 * tau + 1.0) * np.abs(dropped).sum()
        return ExactLoss(float(loss.mean()), float(err.mean()), "enumeration of active partners")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*exceeds the requested tol")
        res = exact_loss_from_weights(w, b, p, tol=max(float(tol), 1e-13), max_nodes=max_nodes)
    return ExactLoss(res.loss, res.error, "characteristic-function inversion, §7.3")


def _check_k(k: float, name: str = "k") -> float:
    k = float(k)
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"{name} must be a positive number of standard errors, got {k!r}")
    return k


def _check_se(se: Any) -> float:
    se = _as_scalar(se, "se")
    if se < 0:
        raise ValueError(f"se must be >= 0, got {se!r}")
    return se


def assert_loss_matches_weights(
    W_in: Any, W_out: Any, b: Any, p: float, measured: float, se: float, *, k: float = 4.0,
    engine_tol: float | None = None, engine_max_nodes: int = 1 << 15,
) -> CheckReport:
    r"""Assert that ``measured ± se`` is the exact finite-n loss of these weights (docs/theory.md §7).

    The prediction is :func:`exact_loss` (``W_out = None``: ``W_in`` is the effective matrix): the
    expected loss of exactly these weights, from the exact characteristic function of the
    interference (:func:`rugtheory.exact_loss_from_factors`), or by exact enumeration where every
    row has only a few partners. No sampling, no Gaussian step, no large-n limit; it comes with an
    error estimate ``engine_error`` (the engine targets ``engine_tol``, by default
    ``max(DEFAULT_ENGINE_TOL, se/20)``, with at most ``engine_max_nodes`` inversion nodes per row).

    Tolerance: ``k·sqrt(se² + engine_error²)``. ``measured`` is a sample mean, so if it is the loss
    of these weights its distance to the exact value is one draw from (nearly) ``N(0, se²)``; the
    engine adds its own independent error. ``k = 4`` standard errors: a correct measurement fails
    about 6e-5 of the time (Gaussian tail), while a wrong loss unit, a training minibatch instead of
    fresh data, or another data distribution is usually off by many SE. ``se = 0`` tests an exact
    value (then the engine error alone sets the tolerance).
    """
    p = float(check_probability(_as_scalar(p, "p")))
    measured = _as_scalar(measured, "measured")
    se = _check_se(se)
    k = _check_k(k)
    w_in = as_numpy(W_in, "W_in")
    w_out = None if W_out is None else as_numpy(W_out, "W_out")
    w_in, w_out, b = _check_factors(w_in, w_out, as_numpy(b, "b"))
    tol = max(DEFAULT_ENGINE_TOL, se / 20.0) if engine_tol is None else float(engine_tol)
    exact = exact_loss(w_in, w_out, b, p, tol=tol, max_nodes=engine_max_nodes)
    diff = measured - exact.loss
    combined = math.hypot(se, exact.error)
    tol = k * combined
    passed = abs(diff) <= tol
    z = diff / combined if combined > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    n, m = w_in.shape[1], w_in.shape[0]
    lines = [
        f"model: n = {n}, m = {m}, p = {p:.6g}",
        (f"predicted: {exact.loss:.6e} ± {exact.error:.1e} (exact finite-n loss of these weights, docs/theory.md §7, "
         f"by {exact.route}; ± is its error estimate)"),
        f"measured:  {measured:.6e} ± {se:.1e} (SE)",
        f"difference: {diff:+.3e} = {z:+.2f} combined SE ({100 * diff / exact.loss if exact.loss > 0 else 0.0:+.2f}%)",
        f"tolerance: k·sqrt(se² + engine_error²) = {k:g} × {combined:.2e} = {tol:.2e}",
        ("why: a held-out mean of the loss of these weights differs from the exact value by ~N(0, se²), "
        f"plus the engine's error; {k:g} SE leave a false alarm rate of ~{math.erfc(k / math.sqrt(2)):.0e}"),
    ]
    if not passed:
        lines += [
            ("likely causes: the loss is not the per-feature mean of (y − x)² (divide a sum over features by n, §1); "
            "it was taken on a training minibatch, not fresh samples; the data are not Bernoulli(p)·Uniform[0, 1); "
            "the weights passed are not the ones measured; or se is underestimated"),
        ]
    values = {"predicted": exact.loss, "engine_error": exact.error, "measured": measured, "se": se,
              "difference": diff, "z": z, "tolerance": tol}
    return _finish(CheckReport("assert_loss_matches_weights", passed, tuple(lines), values))


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _rug_finite_n_loss(n: int, m: int, p: float, seed: int, tol: float) -> tuple[float, float, str]:
    """Exact loss of the Persian rug at (n, m) with the theory scalars; Fourier kind when n is not 2^k."""
    import warnings

    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars
    from rugtheory.theory.finite_n import exact_loss_of_row

    kind = "hadamard" if _is_power_of_two(n) else "fourier"
    rug = persian_rug(n, m, seed=seed, kind=kind)
    sc = theory_scalars(rug, p)
    with warnings.catch_warnings():  # the error estimate is returned and reported
        warnings.filterwarnings("ignore", message=r".*exceeds the requested tol")
        loss, err = exact_loss_of_row(sc.alpha * rug.row(0), 0, sc.beta, p, tol=tol)
    return loss, err, kind


def assert_near_prediction(
    measured: float, n: int, m: int, p: float, *, se: float = 0.0, rtol: float = 0.25, atol: float = 0.0,
    k: float = 4.0, atlas: Atlas | None = None, rug_seed: int = 0, engine_tol: float = DEFAULT_ENGINE_TOL,
) -> CheckReport:
    r"""Assert that a measured loss lies in the band the theory predicts at ``(n, m, p)``.

    The band has two ends, both stated in the report:

    - **upper reference**: ``max(L_rug(n), L*)`` where ``L_rug(n)`` is the *exact finite-n loss* of
      the forward-engineered Persian rug at this n (docs/theory.md §8; Hadamard rows drawn with
      ``rug_seed``, Fourier kind when n is not a power of two; the theory scalars α = a*,
      β = b* − a*μ; inverted exactly as in §7) and ``L*(p, m/n)`` the symmetric large-n optimum (§4).
      A trained model of this shape can reach the rug's loss with two scalars, so a model above it
      is worse than a construction that needs no training.
    - **lower reference**: the large-n loss of the structure expected to win at ``(p, r)``
      (:func:`rugtheory.expected_structure`, docs/theory.md §10: paired rugs, untied pairs,
      polytopes and their mixtures, or L* where it wins). It is the lowest loss the project knows
      how to build; a model below it is either mis-measured or a finding.

    Passes when ``lower·(1 − rtol) − slack ≤ measured ≤ upper·(1 + rtol) + slack`` with
    ``slack = atol + k·se``. ``rtol`` (default 0.25) allows finite-n effects on the lower end
    (a paired rug at n ≤ 512 is a few % above its large-n loss, §10.4) and incomplete training on
    the upper end; ``atol`` helps where both references are ~0 (r → 1).

    ``atlas``: an optional callable ``atlas(n, r, p) -> (loss, se)`` or ``None`` (no entry), e.g. a
    measured atlas of trained losses. If given and it has an entry, the check also requires
    ``|measured − loss| ≤ rtol·loss + atol + k·sqrt(se² + atlas_se²)``; the report says when it
    had none.
    """
    from rugtheory.constructions.phase_map import expected_structure
    from rugtheory.theory.optimum import optimal_symmetric_loss

    measured = _as_scalar(measured, "measured")
    se = _check_se(se)
    n = check_int(n, "n", low=2)
    m = check_int(m, "m", low=1, high=n)
    p = float(check_probability(_as_scalar(p, "p")))
    rtol = float(rtol)
    if not (np.isfinite(rtol) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be in [0, 1), got {rtol!r}")
    atol = float(atol)
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be >= 0, got {atol!r}")
    k = _check_k(k)
    r = m / n
    l_star = float(optimal_symmetric_loss(p, r).loss)
    rug_loss, rug_err, kind = _rug_finite_n_loss(n, m, p, check_seed(rug_seed, "rug_seed"), engine_tol)
    expected = expected_structure(p, r)
    upper_ref = max(rug_loss, l_star)
    lower_ref = float(expected.loss)
    slack = atol + k * se
    hi = upper_ref * (1.0 + rtol) + slack
    lo = lower_ref * (1.0 - rtol) - slack
    lines = [
        f"model: n = {n}, m = {m} (r = {r:.4g}), p = {p:.6g}",
        f"measured: {measured:.6e} ± {se:.1e} (SE)",
        f"Persian rug at this n (exact finite-n loss, {kind} rows, seed {rug_seed}, theory scalars; "
        f"docs/theory.md §8, §7): {rug_loss:.6e}" + (f" ({rug_loss / l_star:.3f} L*)" if l_star > 0 else ""),
        f"L*(p, r) (symmetric large-n optimum, docs/theory.md §4): {l_star:.6e}",
        f"expected structure at large n (docs/theory.md §10): {expected.winner!r}, {lower_ref:.6e}",
        (f"band: [{lo:.6e}, {hi:.6e}] = [expected·(1 − {rtol:g}) − slack, max(rug, L*)·(1 + {rtol:g}) + slack], "
        f"slack = atol + k·se = {atol:g} + {k:g}×{se:.1e}"),
    ]
    failures = []
    if measured > hi:
        failures.append(
            f"ABOVE the upper end by {measured - hi:.3e} ({measured / upper_ref:.3f}× the upper reference): worse "
            "than the forward-engineered rug at this n; likely undertrained, dead features, a too-large learning "
            "rate, or a loss summed over features instead of averaged (§1)" if upper_ref > 0 else
            f"ABOVE the upper end by {measured - hi:.3e}: the references are 0 here; set atol")
    if measured < lo:
        failures.append(
            f"BELOW the lower end by {lo - measured:.3e} ({measured / lower_ref:.3f}× the expected structure): better "
            "than the best structure the theory knows at large n; check the loss unit (per-feature mean, §1), the data "
            "distribution and that the loss is held out; if all hold, this is a finding worth reporting"
            if lower_ref > 0 else f"BELOW the lower end by {lo - measured:.3e}")
    values = {"measured": measured, "se": se, "rug_finite_n": rug_loss, "rug_engine_error": rug_err, "L_star": l_star,
              "expected_structure": lower_ref, "low": lo, "high": hi}
    if atlas is not None:
        if not callable(atlas):
            raise ValueError(f"atlas must be a callable (n, r, p) -> (loss, se) or None, got {type(atlas).__name__}")
        entry = atlas(n, r, p)
        if entry is None:
            lines.append(f"atlas: no entry at (n = {n}, r = {r:.4g}, p = {p:.6g}); not compared")
        else:
            a_loss, a_se = (float(v) for v in entry)
            a_tol = rtol * a_loss + atol + k * math.hypot(se, a_se)
            lines.append(f"atlas of trained losses: {a_loss:.6e} ± {a_se:.1e}; tolerance rtol·loss + atol + "
                         f"k·sqrt(se² + atlas_se²) = {a_tol:.2e}")
            values.update({"atlas": a_loss, "atlas_se": a_se, "atlas_tolerance": a_tol})
            if abs(measured - a_loss) > a_tol:
                side = "above" if measured > a_loss else "below"
                ratio = measured / a_loss if a_loss > 0 else math.inf
                failures.append(f"{side.upper()} the atlas by {abs(measured - a_loss):.3e} "
                                f"({ratio:.3f}× the trained models measured there)")
    lines += [f"failed: {f}" for f in failures]
    return _finish(CheckReport("assert_near_prediction", not failures, tuple(lines), values))


def assert_symmetric_statistics(
    W: Any, b: Any, p: float, *, max_a_spread: float | None = 0.1, min_relative_a: float | None = 0.5,
    max_bias_spread: float | None = 0.25, max_sigma2_spread: float | None = 0.25, max_lyapunov: float | None = 1.0,
    max_weight_ratio: float | None = 0.5,
) -> CheckReport:
    r"""Assert that the row statistics of ``W = W_out W_in`` are those of the symmetric regime (docs/theory.md §2).

    Computed by :func:`rugtheory.weight_statistics` (no sampling). Each bound is checked over
    rows; ``None`` skips it. Defaults and why:

    - ``max_a_spread = 0.1``: std over rows of the diagonal a_i = W_ii, relative to |mean a|. The
      theory gives every feature the same gain.
    - ``min_relative_a = 0.5``: the smallest a_i / mean a. A few dead features (a_i ≈ 0, common in
      trained models at small p, §12) barely move the spread but fail this.
    - ``max_bias_spread = 0.25``: std of the effective bias c_i = b_i + μ_i, in units of the mean
      σ_i (the loss depends on c/σ, §3), so a quarter of the noise scale.
    - ``max_sigma2_spread = 0.25``: std of σ_i² = v Σ_j ε_ij² relative to its mean (the rank bound
      of §4.1 fixes the mean of σ², the symmetric regime its spread).
    - ``max_lyapunov = 1.0``: the largest Lyapunov ratio Λ_i; the Kolmogorov distance of ν_i/σ_i to
      N(0, 1) is below 0.6·Λ_i (Berry–Esseen). A flat row has Λ ≈ 1.3/√(pn), so 1.0 needs p·n ≳ 2;
      antipodal pairs (one partner) have Λ ≈ 1.3/√p and fail it, as they should. The Persian rug at
      n = 512, r = 1/4, p = 0.045 has 0.41.
    - ``max_weight_ratio = 0.5``: max_j |ε_ij| / ‖ε_i‖, "no dominant entry" (§2); a paired rug at
      r = 1/4 has 0.58 (its partner), a Persian rug well below 0.5.

    ``W`` may also be given as a pair ``(W_in, W_out)``.
    """
    from rugtheory.theory.weights import weight_statistics

    if isinstance(W, (tuple, list)) and len(W) == 2:
        w_in = as_numpy(W[0], "W_in")
        w_in, w_out, _ = _check_factors(w_in, as_numpy(W[1], "W_out"), np.zeros(w_in.shape[-1]))
        w = w_out @ w_in
    else:
        w = as_numpy(W, "W")
    p = float(check_probability(_as_scalar(p, "p")))
    stats = weight_statistics(w, as_numpy(b, "b"), p, sampled_rows=0, seed=0)
    a, c, s2 = stats.a, stats.effective_bias, stats.sigma**2
    sigma_mean = float(np.mean(stats.sigma))
    rows = np.arange(a.size)

    def rel(x: np.ndarray, scale: float) -> float:
        return float(np.std(x) / scale) if scale > 0 else (0.0 if np.std(x) == 0 else math.inf)

    def worst(x: np.ndarray, centre: float) -> str:
        idx = rows[np.argsort(-np.abs(x - centre))[:3]]
        return ", ".join(f"row {i}: {x[i]:.4g}" for i in idx)

    a_mean = float(np.mean(a))
    min_ratio = float(np.min(a) / a_mean) if a_mean > 0 else -math.inf
    checks = [
        ("spread of a_i = W_ii (std / |mean|)", rel(a, abs(float(np.mean(a)))), max_a_spread,
         f"mean {np.mean(a):.4g}; furthest rows {worst(a, float(np.mean(a)))}"),
        ("smallest a_i / mean a (dead or weak features)", min_ratio, min_relative_a,
         f"weakest rows {', '.join(f'row {i}: {a[i]:.4g}' for i in rows[np.argsort(a)[:3]])}"),
        ("spread of the effective bias c_i = b_i + μ_i (std / mean σ_i)", rel(c, sigma_mean), max_bias_spread,
         f"mean {np.mean(c):.4g}, mean σ {sigma_mean:.4g}; furthest rows {worst(c, float(np.mean(c)))}"),
        ("spread of σ_i² (std / mean)", rel(s2, float(np.mean(s2))), max_sigma2_spread,
         f"mean {np.mean(s2):.4g}; furthest rows {worst(s2, float(np.mean(s2)))}"),
        ("Lyapunov ratio Λ_i (max over rows)", float(np.max(stats.lyapunov_ratio)), max_lyapunov,
         f"median {np.median(stats.lyapunov_ratio):.4g}; flat-row value 1.3/√(pn) = {1.3 / math.sqrt(p * a.size):.3g}"),
        ("largest entry ratio max_j|ε_ij|/‖ε_i‖ (max over rows)", float(np.max(stats.max_weight_ratio)),
         max_weight_ratio,
         f"median {np.median(stats.max_weight_ratio):.4g}"),
    ]
    lines = [f"weights: n = {a.size}, p = {p:.6g} (statistics of docs/theory.md §2)"]
    failed = []
    values: dict[str, float] = {}
    for name, value, bound, detail in checks:
        values[name] = value
        if bound is None:
            lines.append(f"{name}: {value:.4g} (not checked)")
            continue
        lower_bound = name.startswith("smallest")  # the one bound from below
        ok = value >= float(bound) if lower_bound else value <= float(bound)
        op = (">=" if ok else "<") if lower_bound else ("<=" if ok else ">")
        lines.append(f"{name}: {value:.4g} {op} {float(bound):g} {'ok' if ok else 'FAILED'}; {detail}")
        if not ok:
            failed.append(name)
    if failed:
        lines.append("failed: " + "; ".join(failed) + " — the weights are not in the symmetric regime, so the Gaussian "
                     "theory of §3–§4 does not describe them (the exact finite-n loss of §7 still does)")
    return _finish(CheckReport("assert_symmetric_statistics", not failed, tuple(lines), values))


# --------------------------------------------------------------------------------------------
# hypothesis strategies (hypothesis imported inside each function: a test dependency)

_Range = Any  # a number or a (lo, hi) pair


def _range(value: _Range, name: str, *, low: float, high: float, low_open: bool) -> tuple[float, float]:
    """``value`` or ``(lo, hi)`` as a closed interval inside (low, high] or [low, high]; one-line ValueError."""
    opening = "(" if low_open else "["
    allowed = f"a number in {opening}{low:g}, {high:g}] or a (lo, hi) range inside it with lo <= hi"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
        lo, hi = value
    else:
        lo = hi = value
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    inside = (lambda x: low < x <= high) if low_open else (lambda x: low <= x <= high)
    if not (np.isfinite(lo) and np.isfinite(hi) and inside(lo) and inside(hi) and lo <= hi):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return lo, hi


def _n_choices(n: _Range) -> list[int]:
    if isinstance(n, (tuple, list)):
        ints = len(n) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in n)
        if not ints or n[0] > n[1]:
            raise ValueError(f"n must be a power of two >= 2 or an integer range (lo, hi) with lo <= hi, got {n!r}")
        lo, hi = int(n[0]), int(n[1])
    else:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not _is_power_of_two(int(n)) or n < 2:
            raise ValueError(f"n must be a power of two >= 2 or an integer range (lo, hi) with lo <= hi, got {n!r}")
        lo = hi = int(n)
    choices = [2**j for j in range(1, 31) if lo <= 2**j <= hi]
    if not choices:
        raise ValueError(f"n range {n!r} contains no power of two >= 2")
    return choices


def _m_range(nn: int, r_lo: float, r_hi: float, fixed: bool) -> tuple[int, int] | None:
    if fixed:
        m = max(1, min(nn, round(r_lo * nn)))
        return m, m
    m_lo = max(1, math.ceil(r_lo * nn - 1e-9))
    m_hi = min(nn, math.floor(r_hi * nn + 1e-9))
    return (m_lo, m_hi) if m_lo <= m_hi else None


def hyperparameters(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                    min_pn: float = 0.0) -> Any:
    """A hypothesis strategy of :class:`Hyperparameters` ``(n, m, p)`` in the regimes the theory covers.

    - ``n``: a power of two, or a range ``(lo, hi)``: a power of two in it (default 64…512).
    - ``r``: a number in (0, 1] (``m = round(r·n)``, at least 1) or a range: ``m`` an integer with
      ``lo ≤ m/n ≤ hi`` (sizes n without such an m are not drawn). Default (0.1, 1].
    - ``p``: a number in (0, 1] or a range, drawn log-uniformly (default 0.01…0.3).
    - ``min_pn``: draw only ``p·n ≥ min_pn`` (the Gaussian step of §2 needs p·n ≫ 1; the exact
      finite-n loss of §7 needs nothing). Sizes that cannot reach it are not drawn.

    Raises ``ValueError`` (one line, naming the parameter) for an impossible range.
    """
    from hypothesis import strategies as st

    n_opts = _n_choices(n)
    p_lo, p_hi = _range(p, "p", low=0.0, high=1.0, low_open=True)
    r_lo, r_hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
    r_fixed = not isinstance(r, (tuple, list))
    min_pn = float(min_pn)
    if not (np.isfinite(min_pn) and min_pn >= 0):
        raise ValueError(f"min_pn must be a number >= 0, got {min_pn!r}")
    sizes = [(nn, mr) for nn in n_opts
             if (mr := _m_range(nn, r_lo, r_hi, r_fixed)) is not None and nn * p_hi >= min_pn]
    if not sizes:
        raise ValueError(f"r range ({r_lo:g}, {r_hi:g}) with n in {n_opts} and min_pn = {min_pn:g} "
                         "leaves no size to draw")

    @st.composite
    def draw(data: Any) -> Hyperparameters:
        nn, (m_lo, m_hi) = data(st.sampled_from(sizes))
        mm = data(st.integers(m_lo, m_hi))
        lo = max(p_lo, min_pn / nn)
        if lo >= p_hi:
            pp = p_hi
        else:
            u = data(st.floats(math.log(lo), math.log(p_hi)))
            pp = min(max(math.exp(u), lo), p_hi)
        return Hyperparameters(nn, mm, pp)

    return draw()


def _with_seed(hp: Any, build: Callable[[Hyperparameters, int], ModelWeights]) -> Any:
    from hypothesis import strategies as st

    return st.tuples(hp, st.integers(0, 2**16)).map(lambda t: build(*t))


def _build_rug(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars

    rug = persian_rug(h.n, h.m, seed=seed)
    sc = theory_scalars(rug, h.p)
    return ModelWeights(rug.W_in, sc.alpha * rug.W_out, np.full(h.n, sc.beta), h.p, "persian rug", sc.predicted_loss)


def persian_rug_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                        min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of the Persian rug (docs/theory.md §8) at its theory scalars.

    Random Hadamard rows (the seed is drawn too), ``W_out = α W_inᵀ/m``, ``b = β`` with
    ``α = a*``, ``β = b* − a*μ`` (:func:`rugtheory.theory_scalars`); ``large_n_loss = L*(p, r)``.
    Arguments as in :func:`hyperparameters`.
    """
    return _with_seed(hyperparameters(n=n, p=p, r=r, min_pn=min_pn), _build_rug)


def _half_ratio(r: _Range) -> _Range:
    if isinstance(r, (tuple, list)) and len(r) == 2:
        lo, hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
        if lo > 0.5:
            raise ValueError(f"r must allow r <= 1/2 for a paired rug (one hidden direction per pair), got {r!r}")
        return (lo, min(hi, 0.5))
    lo, _ = _range(r, "r", low=0.0, high=0.5, low_open=True)
    return lo


def _build_paired_rug(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.structure_weights import paired_rug_weights as build

    opt = optimal_paired_rug_loss(h.p, h.r)
    w_in, w_out, b = build(h.n // 2, h.m, float(opt.gain), float(opt.bias), seed=seed)
    return ModelWeights(w_in, w_out, b, h.p, "paired rug", float(opt.loss))


def paired_rug_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 0.5),
                       min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of a rug of antipodal pairs (docs/theory.md §10.4), r ≤ 1/2.

    Features j and j + n/2 are antipodal partners; the n/2 pair directions form a Persian rug in m
    dimensions. Gain and bias are the large-n optimum (``optimal_paired_rug_loss``), whose loss is
    ``large_n_loss``. ``r`` ranges are clipped to 1/2.
    """
    return _with_seed(hyperparameters(n=n, p=p, r=_half_ratio(r), min_pn=min_pn), _build_paired_rug)


def antipodal_pair_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of n/2 tied antipodal pairs (docs/theory.md §10.1), r = 1/2.

    ``W = g [[1, −1], [−1, 1]]`` per pair with the optimal gain g and bias of
    ``optimal_structure_loss`` (``large_n_loss``, exact at any n: the pairs do not interact).
    """
    def build(h: Hyperparameters) -> ModelWeights:
        from rugtheory.constructions.polytopes import (
            antipodal_pairs,
            optimal_structure_loss,
        )
        from rugtheory.constructions.structure_weights import construction_weights

        opt = optimal_structure_loss(antipodal_pairs(), h.p)
        w_in, w_out, b = construction_weights(antipodal_pairs(), h.n // 2, float(opt.gain), float(opt.bias))
        return ModelWeights(w_in, w_out, b, h.p, "antipodal pairs", float(opt.loss))

    return hyperparameters(n=n, p=p, r=0.5, min_pn=min_pn).map(build)


def untied_pair_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of n/2 optimal untied pairs (docs/theory.md §10.2), r = 1/2.

    ``W_in = [1, −t]``, ``W_out = [g₁, −g₂/t]ᵀ`` per pair with the optimum of
    ``optimal_untied_pairs`` (``large_n_loss``; exact at any n).
    """

    def build(h: Hyperparameters) -> ModelWeights:
        from rugtheory.constructions.polytopes import optimal_untied_pairs
        from rugtheory.constructions.structure_weights import (
            untied_pair_weights as build_pairs,
        )

        o = optimal_untied_pairs(h.p)
        w_in, w_out, b = build_pairs(h.n // 2, float(o.t), (float(o.gain1), float(o.gain2)),
                                     (float(o.bias1), float(o.bias2)))
        return ModelWeights(w_in, w_out, b, h.p, "untied pairs", float(o.loss))

    return hyperparameters(n=n, p=p, r=0.5, min_pn=min_pn).map(build)


def _build_gaussian(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.theory.optimum import optimal_symmetric_loss

    rng = np.random.default_rng(seed)
    v = rng.standard_normal((h.m, h.n))
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    opt = optimal_symmetric_loss(h.p, h.r)
    a, b0 = float(opt.a), float(opt.b)
    w = v.T @ v
    mu = 0.5 * h.p * (w.sum(axis=1) - 1.0)  # (p/2) Σ_{j≠i} W_ij with unit diagonal
    return ModelWeights(v, a * v.T, b0 - a * mu, h.p, "gaussian directions", None)


def gaussian_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                     min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` with random Gaussian directions, tied, at the symmetric optimum's scalars.

    ``W_in`` has i.i.d. N(0, 1) entries with columns normalised to 1 (random unit directions in
    R^m), ``W_out = a* W_inᵀ``, ``b_i = b* − a*μ_i`` (effective bias b*, §2). Permutation symmetric
    in law but not exactly: Σ_{j≠i} W_ij² ≈ (n − 1)/m exceeds the rank bound 1/r − 1 (§4.1), so no
    large-n loss is attached (``large_n_loss = None``).
    """
    return _with_seed(hyperparameters(n=n, p=p, r=r, min_pn=min_pn), _build_gaussian)


def any_weights(*, n: _Range = (64, 256), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0), min_pn: float = 0.0) -> Any:
    """Strategy drawing from every construction above.

    ``r`` and ``min_pn`` go to the Persian rug and the Gaussian directions (and, clipped to 1/2, to
    the paired rug when the range reaches below 1/2); the pairs (r = 1/2) join when ``r`` allows it.
    """
    from hypothesis import strategies as st

    r_lo, r_hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
    parts = [persian_rug_weights(n=n, p=p, r=r, min_pn=min_pn), gaussian_weights(n=n, p=p, r=r, min_pn=min_pn)]
    if r_lo <= 0.5:
        parts.append(paired_rug_weights(n=n, p=p, r=r if isinstance(r, (tuple, list)) else r_lo, min_pn=min_pn))
    if r_lo <= 0.5 <= r_hi:
        parts += [antipodal_pair_weights(n=n, p=p, min_pn=min_pn), untied_pair_weights(n=n, p=p, min_pn=min_pn)]
    return st.one_of(*parts)
