"""Independent twins of the closed forms: mpmath oracles, scipy quadrature and Monte Carlo routes (imports theory and constructions)."""
