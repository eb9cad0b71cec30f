"""Experiments: online A/B test assignment."""
