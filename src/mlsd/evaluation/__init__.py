"""Offline evaluation: metrics per task type (classification, top-k, query ranking), significance, OPE."""
