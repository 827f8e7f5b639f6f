r"""Reading a user's model and measuring it: :class:`ModelWeights`, :func:`model_weights` (numpy or
torch weights, or a two-``Linear`` torch module) and :func:`held_out_loss` (loss ± SE on fresh samples).
Part of :mod:`rugtheory.testing`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rugtheory.theory.checks import (
    check_finite,
    check_int,
    check_probability,
    check_seed,
)

__all__ = ["HeldOutLoss", "Hyperparameters", "ModelWeights", "as_numpy", "as_scalar", "check_factors",
           "held_out_loss", "model_weights"]


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


def as_scalar(value: Any, name: str) -> float:
    arr = as_numpy(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def check_factors(w_in: np.ndarray, w_out: np.ndarray | None,
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
        return check_factors(w_in, w_out, as_numpy(obj[2], "b"))
    if all(hasattr(obj, a) for a in ("W_in", "W_out", "b")):
        w_out_attr = obj.W_out
        w_out = None if w_out_attr is None else as_numpy(w_out_attr, "W_out")
        return check_factors(as_numpy(obj.W_in, "W_in"), w_out, as_numpy(obj.b, "b"))
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
        w_in, w_out, b = check_factors(w_in, w_out, b)
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

    p = float(check_probability(as_scalar(p, "p")))
    samples = check_int(samples, "samples", low=2)
    seed = check_seed(seed)
    w_in, w_out, b = model_weights(model_or_weights)
    est = model_loss_monte_carlo(w_in, w_out, b, p, n_samples=samples, seed=seed)
    return HeldOutLoss(float(est.mean), float(est.se))
