"""The constructions layer: weights built from the theory (Persian rug, polytopes, paired rugs) and their losses.

Imports only rugtheory.theory.
"""
