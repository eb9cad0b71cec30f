"""The latency baseline: bare Starlette returning a constant JSON body, served by uvicorn like the service."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def score(request: Request) -> Response:
    await request.body()
    return JSONResponse({"ranked": [{"app": 1, "channel": 1, "probability": 0.5}]})


app = Starlette(routes=[Route("/v1/ads/score", score, methods=["POST"])])

if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run("_baseline_app:app" if workers > 1 else app, host="127.0.0.1", port=int(sys.argv[1]),
                workers=workers, log_level="warning", access_log=False)
