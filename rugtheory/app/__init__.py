"""The app layer: the command line and the report.

The only layer that imports the harness (rugtheory.validation) and the derivations (rugtheory.derivations).
"""
