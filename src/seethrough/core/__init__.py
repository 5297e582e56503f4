"""The base every layer above models shares: calling a model, scoring classes, min-max maps,
checking metric inputs, seeded per-sample noise and input spaces.

Nothing here imports another seethrough package, so
``explanations`` and ``metrics`` can both build on it without importing each other.
"""
