"""The lifecycle verbs over any registered system: serve it, replay its held-out traffic, run it end to end."""

from mlsd.lifecycle.run import replay_running, replay_system, run_demo

__all__ = ["replay_running", "replay_system", "run_demo"]
