"""Independent twins of the closed forms: mpmath oracles, scipy quadrature, enumeration and Monte Carlo routes.

Imports rugtheory.theory and rugtheory.constructions.
"""
