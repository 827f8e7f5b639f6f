"""The app layer: the command line and the report; the only layer that imports the harness (rugtheory.validation) and the derivations (rugtheory.derivations)."""
