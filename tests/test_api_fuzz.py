"""Property-based API tests (schemathesis, every check) against the served OpenAPI document.

No generated input may get a 5xx, a schema-violating body must be refused and a valid one taken,
and every answer must be documented. The platform's edge is checked with a plain service; the ads
service (generated clicks) with its real model and feature store. ``MLSD_FUZZ_EXAMPLES`` raises the
number of cases per route (the CI default keeps the suite short).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from mlsd.datasets import synthetic_clicks
from mlsd.serving.app import create_app
from mlsd.serving.feature_log import FeatureLog
from mlsd.systems.ads.run import AdsRun
from mlsd.systems.ads.service import AdsService
from tests.test_edge import BusyService, _app

EXAMPLES = int(os.environ.get("MLSD_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

edge = schemathesis.openapi.from_asgi("/openapi.json", _app(Path(tempfile.mkdtemp()), BusyService()))


@edge.parametrize()
@FUZZ
def test_the_edge_agrees_with_its_openapi_document(case: Any) -> None:
    case.call_and_validate()


def _ads_app() -> Any:
    home = Path(tempfile.mkdtemp(prefix="mlsd-fuzz-ads-"))
    AdsRun(home, clicks=synthetic_clicks(20_000, seed=5), models=("lgbm",), progress=False, flat_datasets=False).run()
    return create_app(AdsService(home, poll_interval=3600), FeatureLog(home / "feature_log"))  # type: ignore[arg-type]


ads = schemathesis.openapi.from_asgi("/openapi.json", _ads_app())  # built when the module is collected


@ads.parametrize()
@FUZZ
def test_the_ads_service_agrees_with_its_openapi_document(case: Any) -> None:
    case.call_and_validate()
