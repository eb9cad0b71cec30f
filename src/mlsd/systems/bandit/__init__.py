"""Recommendation policies on the Open Bandit Dataset: off-policy evaluation before an A/B test."""
