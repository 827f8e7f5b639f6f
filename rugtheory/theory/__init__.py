"""The theory layer: closed forms and exact engines (numpy/scipy only; imports nothing above it)."""
