"""The Persian rug: exact permutation-symmetric weights at any scale (docs/theory.md §8).

Hadamard kind (``n = 2^k``): pick a set ``S`` of ``m`` rows of the Sylvester–Hadamard matrix
``H`` (``H_ij = (-1)^{popcount(i AND j)}``, ``H H = n I``) and set

    W_in = H[S]          (m × n),
    W_out = W_in^T / m   (n × m),
    W = W_out W_in,      W_ij = g(i XOR j),   g(k) = (1/m) Σ_{s∈S} (-1)^{popcount(s AND k)}.

Then ``W_ii = g(0) = 1``, ``W W = (n/m) W`` so ``W = P/r`` with ``P = rW`` an orthogonal
projection of rank ``m`` (``r = m/n``), and every row has ``Σ_{j≠i} W_ij² = 1/r − 1``: the rank
bound of docs/theory.md §4 holds with equality and all rows are alike up to the permutation
``j -> i XOR j``.

Fourier kind (any ``n``): pick a set ``K`` of ``m`` frequencies closed under ``f -> n − f``
(so the projection is real) and use the real harmonic frame: row ``1`` for ``f = 0``,
``(-1)^j`` for ``f = n/2``, and ``√2 cos(2π f j/n)``, ``√2 sin(2π f j/n)`` for a pair
``{f, n − f}`` with ``0 < f < n/2`` (the sine row is listed under ``n − f``). Each row has squared
norm ``n`` and the rows are orthogonal, so with ``W_out = W_in^T / m`` again ``W = (n/m) P`` with
``P = F^{-1} diag(1_K) F`` and ``W`` is circulant: ``W_ij = g((i − j) mod n)``,
``g(k) = (1/m) Σ_{f∈K} cos(2π f k/n)``, ``g(0) = 1``.

Reachable sizes (Fourier): every ``1 ≤ m ≤ n``. Self-conjugate frequencies are ``0`` and, for
even ``n``, ``n/2``; the others come in pairs. For odd ``m`` the set holds exactly one
self-conjugate frequency (``0`` if ``n`` is odd); for even ``m`` it holds none or (``n`` even)
both. ``rows="random"`` draws uniformly among all such symmetric sets.

``rows="first"`` is the documented counterexample (docs/theory.md §8, "Caution"): Hadamard rows
``0..m−1`` (a subgroup when ``m`` is a power of two) or the Fourier subgroup
``K = {0, n/m, 2n/m, ...}`` (needs ``m`` dividing ``n``). Both give ``W_ij = [i ≡ j mod m]``
for a power-of-two ``m``: exact second moments, but a 0/1 block ``W`` whose interference is a
sum of ``1/r − 1`` unit terms, far from Gaussian.

Exactness in floating point: Hadamard ``W`` entries are integers divided by ``m`` and every
transform is exact in float64 for ``n ≤ 2^20``; Fourier entries carry cosine rounding
(``~1e-15``).

The rug model is ``y = ReLU(α W x + β)`` with two scalars; :func:`theory_scalars` takes them from
the symmetric optimum ``(a*, b*)`` of docs/theory.md §4 (:func:`rugtheory.optimal_symmetric_loss`):
``α = a*`` and ``β = b* − a* μ`` with ``μ = (p/2) Σ_{j≠i} W_ij``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rugtheory.constructions.hadamard import check_power_of_two, fwht, sylvester_rows
from rugtheory.theory.checks import check_finite, check_int, check_probability, check_seed
from rugtheory.theory.display import with_compact_repr

__all__ = [
    "PersianRug",
    "RugScalars",
    "persian_rug",
    "theory_scalars",
    "DENSE_MAX_ENTRIES",
]

#: Largest number of float64 entries a dense view (``W_in``, ``W_out``, ``dense()``) may have:
#: 2^26 entries = 512 MiB. The fast operators need none of them.
DENSE_MAX_ENTRIES = 1 << 26

_KINDS = ("hadamard", "fourier")
_ROW_CHOICES = ("random", "first")


@dataclass(frozen=True, eq=False)
class PersianRug:
    """A Persian-rug weight matrix ``W = W_out W_in`` held by its row set, with fast operators.

    Attributes
    ----------
    n, m : int
        Features and hidden units; ``r = m/n``.
    kind : {"hadamard", "fourier"}
    rows : numpy.ndarray of int64, shape (m,)
        Sorted Hadamard row indices ``S`` or sorted frequency set ``K`` (closed under ``f -> n − f``).
    row_choice : {"random", "first"}
    seed : int
    """

    n: int
    m: int
    kind: str
    rows: np.ndarray
    row_choice: str
    seed: int

    # ------------------------------------------------------------------ sizes
    @property
    def r(self) -> float:
        """Compression ratio ``m/n``."""
        return self.m / self.n

    # ------------------------------------------------------------------ fast operators
    @cached_property
    def _rfft_mask(self) -> np.ndarray:
        mask = np.zeros(self.n // 2 + 1)
        half = self.rows[self.rows <= self.n // 2]
        mask[half] = 1.0
        return mask

    def _check_x(self, x: np.ndarray, length: int, name: str) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != length:
            raise ValueError(f"{name} must have last axis of length {length}, got shape {arr.shape}")
        return arr

    def apply_in(self, x: np.ndarray) -> np.ndarray:
        """Hidden code ``h = W_in x`` along the last axis: shape (..., n) -> (..., m), ``O(n log n)``."""
        x = self._check_x(x, self.n, "x")
        if self.kind == "hadamard":
            return fwht(x)[..., self.rows]
        spec = np.fft.rfft(x, axis=-1)
        n, rows = self.n, self.rows
        out = np.empty(x.shape[:-1] + (self.m,))
        low = rows <= n // 2  # f = 0, cosine rows, f = n/2
        out[..., low] = spec[..., rows[low]].real
        cos_rows = low & (rows > 0) & (2 * rows < n)
        out[..., cos_rows] *= np.sqrt(2.0)
        high = ~low  # sine rows, listed under n - f
        out[..., high] = -np.sqrt(2.0) * spec[..., n - rows[high]].imag
        return out

    def apply_out(self, h: np.ndarray) -> np.ndarray:
        """Decoder ``W_out h = W_in^T h / m`` along the last axis: shape (..., m) -> (..., n)."""
        h = self._check_x(h, self.m, "h")
        n, rows = self.n, self.rows
        if self.kind == "hadamard":
            full = np.zeros(h.shape[:-1] + (n,))
            full[..., rows] = h
            return fwht(full) / self.m
        spec = np.zeros(h.shape[:-1] + (n // 2 + 1,), dtype=np.complex128)
        low = rows <= n // 2
        cos_rows = low & (rows > 0) & (2 * rows < n)
        spec[..., rows[low]] = h[..., low]
        spec[..., rows[cos_rows]] /= np.sqrt(2.0)
        high = ~low
        spec[..., n - rows[high]] -= 1j * h[..., high] / np.sqrt(2.0)
        return np.fft.irfft(spec * n, n=n, axis=-1) / self.m

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``W x`` along the last axis (batch in leading axes), ``O(n log n)``, no n×n matrix.

        Hadamard: ``W x = H · scatter_S((H x)[S]) / m`` (two fast Walsh–Hadamard transforms).
        Fourier: ``W x = (n/m) · irfft(1_K · rfft(x))``.
        """
        x = self._check_x(x, self.n, "x")
        if self.kind == "hadamard":
            spec = fwht(x)
            masked = np.zeros_like(spec)
            masked[..., self.rows] = spec[..., self.rows]
            return fwht(masked) / self.m
        spec = np.fft.rfft(x, axis=-1) * self._rfft_mask
        return np.fft.irfft(spec, n=self.n, axis=-1) * (self.n / self.m)

    def forward(self, x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
        """The rug model ``y = ReLU(α W x + β)`` along the last axis."""
        alpha = float(check_finite(alpha, "alpha"))
        beta = float(check_finite(beta, "beta"))
        return np.maximum(alpha * self.apply(x) + beta, 0.0)

    # ------------------------------------------------------------------ structure
    @cached_property
    def kernel(self) -> np.ndarray:
        """``g`` of length ``n`` with ``W_ij = g(i XOR j)`` (Hadamard) or ``g((i − j) mod n)`` (Fourier).

        Computed in ``O(n log n)``: ``g = H 1_S / m`` or ``g = (n/m) · irfft(1_K)``. ``g[0] = 1``.
        """
        if self.kind == "hadamard":
            indicator = np.zeros(self.n)
            indicator[self.rows] = 1.0
            g = fwht(indicator) / self.m
        else:
            g = np.fft.irfft(self._rfft_mask, n=self.n) * (self.n / self.m)
        g.setflags(write=False)
        return g

    @property
    def offdiag_row_sum(self) -> float:
        """``Σ_{j≠i} W_ij``, the same for every row: ``(n/m)·[0 ∈ rows] − 1`` exactly.

        (``Σ_k g(k) = (n/m)`` times the indicator that the all-ones row/frequency 0 is chosen.)
        """
        return (self.n / self.m) * float(0 in set(self.rows.tolist())) - 1.0

    def mean_shift(self, p: float) -> float:
        """``μ = (p/2) Σ_{j≠i} W_ij`` of docs/theory.md §2, the same for every row."""
        p = float(check_probability(p))
        return 0.5 * p * self.offdiag_row_sum

    def row(self, i: int) -> np.ndarray:
        """Row ``W[i]`` from the kernel, ``O(n)``."""
        i = check_int(i, "i", low=0, high=self.n - 1)
        j = np.arange(self.n)
        idx = (i ^ j) if self.kind == "hadamard" else (i - j) % self.n
        return self.kernel[idx]

    # ------------------------------------------------------------------ dense views (guarded)
    def _guard(self, entries: int, what: str) -> None:
        if entries > DENSE_MAX_ENTRIES:
            raise ValueError(
                f"{what} would have {entries} entries, more than DENSE_MAX_ENTRIES = {DENSE_MAX_ENTRIES}; "
                "use apply/apply_in/apply_out/kernel instead"
            )

    @property
    def W_in(self) -> np.ndarray:
        """Encoder ``m × n`` (rows of ``H``, or the real harmonic frame), formed on request."""
        self._guard(self.m * self.n, "W_in")
        if self.kind == "hadamard":
            return sylvester_rows(self.rows, self.n)
        n, j = self.n, np.arange(self.n)
        out = np.empty((self.m, n))
        for k, f in enumerate(self.rows.tolist()):
            if f == 0:
                out[k] = 1.0
            elif 2 * f == n:
                out[k] = np.where(j % 2 == 0, 1.0, -1.0)
            elif 2 * f < n:
                out[k] = np.sqrt(2.0) * np.cos(2 * np.pi * ((f * j) % n) / n)
            else:
                out[k] = np.sqrt(2.0) * np.sin(2 * np.pi * (((n - f) * j) % n) / n)
        return out

    @property
    def W_out(self) -> np.ndarray:
        """Decoder ``n × m`` ``= W_in^T / m``, formed on request."""
        return self.W_in.T / self.m

    def dense(self, *, max_entries: int = DENSE_MAX_ENTRIES) -> np.ndarray:
        """The ``n × n`` matrix ``W`` from the kernel, only when asked (at most ``max_entries`` entries).

        Filled row by row (``W[i] = g[i XOR j]`` or ``g[(i − j) mod n]``), so the only large array is
        ``W`` itself.
        """
        max_entries = check_int(max_entries, "max_entries", low=1)
        if self.n * self.n > max_entries:
            raise ValueError(
                f"dense W would have {self.n * self.n} entries, more than max_entries = {max_entries} "
                f"(default DENSE_MAX_ENTRIES = {DENSE_MAX_ENTRIES}); use apply/apply_in/apply_out/kernel instead"
            )
        g = np.asarray(self.kernel)
        j = np.arange(self.n)
        out = np.empty((self.n, self.n))
        for i in range(self.n):
            out[i] = g[i ^ j] if self.kind == "hadamard" else g[(i - j) % self.n]
        return out

    def __repr__(self) -> str:
        return (
            f"PersianRug(n={self.n}, m={self.m}, kind={self.kind!r}, row_choice={self.row_choice!r}, seed={self.seed})"
        )


def _fourier_rows(n: int, m: int, rng: np.random.Generator | None) -> np.ndarray:
    """A frequency set of size ``m`` closed under ``f -> n − f``; uniform among them if ``rng``."""
    n_pairs = (n - 1) // 2  # pairs {f, n - f} with 0 < f < n/2
    self_conj = [0] if n % 2 else [0, n // 2]
    if rng is None:
        # subgroup {0, d, 2d, ...}, d = n/m
        return np.arange(m, dtype=np.int64) * (n // m)
    if m % 2 == 1:
        chosen_self = [self_conj[int(rng.integers(len(self_conj)))]]
    elif len(self_conj) == 2:
        k = m // 2  # none (k pairs) vs both (k - 1 pairs): weights C(P, k) : C(P, k - 1)
        p_none = (n_pairs - k + 1) / (n_pairs + 1)
        chosen_self = [] if rng.random() < p_none else list(self_conj)
    else:
        chosen_self = []
    n_pick = (m - len(chosen_self)) // 2
    pairs = rng.choice(np.arange(1, n_pairs + 1), size=n_pick, replace=False)
    rows = np.concatenate([np.asarray(chosen_self, dtype=np.int64), pairs, n - pairs]).astype(np.int64)
    return np.sort(rows)


def persian_rug(n: int, m: int, *, seed: int, rows: str = "random", kind: str = "hadamard") -> PersianRug:
    """Build a Persian rug ``W = W_out W_in`` of rank ``m`` on ``n`` features (docs/theory.md §8).

    Parameters
    ----------
    n : int
        Features; a power of two for ``kind="hadamard"``, any ``n >= 1`` for ``kind="fourier"``.
    m : int
        Hidden units, ``1 <= m <= n``.
    seed : int
        Non-negative; seeds the random row (frequency) choice.
    rows : {"random", "first"}
        ``"random"``: a uniformly random row set (Gaussian interference at large ``n``).
        ``"first"``: the subgroup counterexample (Hadamard rows ``0..m−1``; Fourier needs ``m | n``).
    kind : {"hadamard", "fourier"}

    Returns
    -------
    PersianRug
        With ``W_ii = 1``, ``W = P/r`` (``P`` an orthogonal projection of rank ``m``),
        ``Σ_{j≠i} W_ij² = 1/r − 1`` in every row, and fast ``apply(x) = W x``.

    Raises
    ------
    ValueError
        Naming the parameter: ``n`` not a power of two (Hadamard), ``m`` outside ``[1, n]``, sizes
        that are not integers, a seed that is not a non-negative integer, an unknown ``rows`` or
        ``kind``, or ``rows="first"`` with a Fourier ``m`` that does not divide ``n``.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if rows not in _ROW_CHOICES:
        raise ValueError(f"rows must be one of {_ROW_CHOICES}, got {rows!r}")
    n = check_power_of_two(n, "n") if kind == "hadamard" else check_int(n, "n", low=1)
    m = check_int(m, "m", low=1, high=n)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    if kind == "hadamard":
        if rows == "random":
            chosen = np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)
        else:
            chosen = np.arange(m, dtype=np.int64)
    else:
        if rows == "first" and n % m != 0:
            raise ValueError(f"m must divide n for rows='first' with kind='fourier' (subgroup), got n={n}, m={m}")
        chosen = _fourier_rows(n, m, rng if rows == "random" else None)
    chosen.setflags(write=False)
    return PersianRug(n=n, m=m, kind=kind, rows=chosen, row_choice=rows, seed=seed)


@with_compact_repr
@dataclass(frozen=True)
class RugScalars:
    """The two scalars of the rug model ``y = ReLU(α W x + β)``.

    ``bias = β + α μ`` is the effective bias ``b`` of docs/theory.md §2 (``μ = (p/2) Σ_{j≠i} W_ij``);
    ``predicted_loss`` is the symmetric large-N loss ``L(α, bias, α s; p)`` at these scalars.
    """

    alpha: float
    beta: float
    bias: float
    p: float
    r: float
    predicted_loss: float
    source: str  # "theory" or "fit"


def theory_scalars(rug: PersianRug, p: float) -> RugScalars:
    """``α = a*``, ``β = b* − a* μ`` from :func:`rugtheory.optimal_symmetric_loss` at ``(p, r = m/n)``.

    No gradient descent: the rug's ``W_ii = 1`` and ``σ = α s`` exactly, so the large-N optimum of
    docs/theory.md §4 is reached by the scalars of the symmetric optimum.
    """
    from rugtheory.theory.optimum import optimal_symmetric_loss  # foundation (issue 2)

    p = float(check_probability(p))
    opt = optimal_symmetric_loss(p, rug.r)
    a, b = float(opt.a), float(opt.b)
    return RugScalars(
        alpha=a, beta=b - a * rug.mean_shift(p), bias=b, p=p, r=rug.r, predicted_loss=float(opt.loss), source="theory"
    )
