"""Property-based API tests (schemathesis, every check) against the served OpenAPI document.

No generated input may get a 5xx, a schema-violating body must be refused and a valid one taken,
and every answer must be documented. The platform's edge is checked with a plain service; the ads
service (generated clicks) with its real model and feature store; recs and search (small builds on
the real data, with ``MLSD_DATA_DIR``) likewise; harmful and visual fuzz the home their
check_system test built (:func:`fuzz_every_route`). ``MLSD_FUZZ_EXAMPLES`` raises the number of cases
per route (the CI default keeps the suite short).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import ignored_auth

from mlsd.datasets.marketplace import AdMarketplace, click_log
from mlsd.serving.app import create_app
from mlsd.serving.feature_log import FeatureLog
from mlsd.system import load_system
from mlsd.systems.ads.run import AdsRun
from mlsd.systems.ads.service import AdsService
from tests.fuzzing import FUZZ, fuzz_every_route, once
from tests.test_edge import TOKEN, BusyService, _app

edge = schemathesis.openapi.from_asgi("/openapi.json", once(_app(Path(tempfile.mkdtemp()), BusyService())))


@edge.parametrize()
@FUZZ
def test_the_edge_agrees_with_its_openapi_document(case: Any) -> None:
    # Writes are checked past the token (the cases carry it; that they need it is test_edge's
    # test_writes_need_the_token_and_json, so schemathesis's own no-auth probe is left out here).
    case.call_and_validate(headers={"authorization": f"Bearer {TOKEN}"}, excluded_checks=[ignored_auth])


def _ads_app() -> Any:
    home = Path(tempfile.mkdtemp(prefix="mlsd-fuzz-ads-"))
    AdsRun(home, clicks=click_log(AdMarketplace(5), 20_000, days=4.0), models=("lgbm",), progress=False,
           flat_datasets=False).run()
    from mlsd.lifecycle.serve import build_monitoring

    service = AdsService(home, poll_interval=3600)
    return once(create_app(service, FeatureLog(home / "feature_log"),  # type: ignore[arg-type]
                           monitoring=build_monitoring(service, home)))  # type: ignore[arg-type]


ads = schemathesis.openapi.from_asgi("/openapi.json", _ads_app())  # built when the module is collected


@ads.parametrize()
@FUZZ
def test_the_ads_service_agrees_with_its_openapi_document(case: Any) -> None:
    case.call_and_validate()


DATA = os.environ.get("MLSD_DATA_DIR")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")
@pytest.mark.parametrize("name", ["recs", "search", "listings", "pymk"])
def test_every_route_of_a_system_agrees_with_its_openapi_document(name: str,
                                                                 small_home: Callable[[str], Path]) -> None:
    from mlsd.lifecycle.serve import build_app

    home = small_home(name)
    assert f"POST {load_system(name).route}" in fuzz_every_route(build_app(name, home))

