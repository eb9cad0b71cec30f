"""Simulation: replaying held-out traffic through a running service, starting one, and generated data."""
