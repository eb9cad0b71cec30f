"""Video recommendation on MovieLens: two-tower + co-visitation + popularity candidates, LambdaMART, MMR."""
