r"""Property-test your own model against the theory.

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

from rugtheory.testing.assertions import (
    DEFAULT_ENGINE_TOL,
    ENUMERATION_MAX_PARTNERS,
    NEGLIGIBLE_ENTRY,
    Atlas,
    CheckReport,
    ExactLoss,
    assert_loss_matches_weights,
    assert_near_prediction,
    assert_symmetric_statistics,
    exact_loss,
)
from rugtheory.testing.models import HeldOutLoss, Hyperparameters, ModelWeights, as_numpy, held_out_loss, model_weights
from rugtheory.testing.strategies import (
    antipodal_pair_weights,
    any_weights,
    gaussian_weights,
    hyperparameters,
    paired_rug_weights,
    persian_rug_weights,
    untied_pair_weights,
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
