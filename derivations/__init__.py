"""sympy derivations; each script regenerates files under derivations/generated/."""
