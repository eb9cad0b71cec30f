"""Scale-out on Ray: the same feature joins, training loops and services, run by a Ray cluster.

Optional (``pip install mlsd[scale]``): nothing in the default path imports this package, and every
module imports Ray inside its functions, so ``import mlsd.scale`` itself needs no Ray. A missing Ray
is a one-line :class:`~mlsd.core.errors.MlsdError` naming the extra. The cluster is the one
``RAY_ADDRESS`` names (``ray start --head`` on the head node, as Ray users start it) or, without it,
a local one started in-process with the machine's CPUs (:func:`mlsd.scale.cluster.ensure_ray`).
"""
