"""Candidate retrieval: vector indexes (ANN) and co-visitation candidates."""
