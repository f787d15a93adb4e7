"""A user's own package, outside mlpframe: one new layer and a model that uses it."""
