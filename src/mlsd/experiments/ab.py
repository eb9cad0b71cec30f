"""Online A/B tests: deterministic hashed assignment of units to arms.

Assignment hashes ``experiment:unit`` with SHA-256, so a user lands in the same arm in every process
and every run, arms are independent across experiments, and no assignment table is needed. The
significance of arm differences is :mod:`mlsd.evaluation.significance`.
"""

from __future__ import annotations

import hashlib

from mlsd.core.records import CONTROL_ARM

CONTROL = CONTROL_ARM  # the feature log's default arm
TREATMENT = "challenger"


def bucket(unit: object, experiment: str) -> float:
    """A uniform number in [0, 1) fixed by the unit and the experiment name."""
    digest = hashlib.sha256(f"{experiment}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(unit: object, experiment: str, treatment_share: float = 0.5) -> str:
    """``challenger`` for a ``treatment_share`` of units, ``champion`` for the rest."""
    return TREATMENT if bucket(unit, experiment) < treatment_share else CONTROL
