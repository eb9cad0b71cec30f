"""Experiments: off-policy evaluation (and, next, online A/B tests)."""
