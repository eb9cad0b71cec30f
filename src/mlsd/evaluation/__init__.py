"""Offline evaluation: metrics per task type, on the scales people publish."""
