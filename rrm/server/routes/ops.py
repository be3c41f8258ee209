"""Health, readiness and metrics (no authentication: no case data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rrm.errors import RRMError
from rrm.server.context import service

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, Any]:
    """Always 200 while the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and its schema current",
    responses={
        503: {
            "description": "Not ready: the database is unreachable or its schema "
            "is not the one this RRM needs.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "status": {"const": "unavailable"},
                            "reason": {"type": "string"},
                        },
                        "required": ["status", "reason"],
                    }
                }
            },
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        }
    },
)
def readyz(request: Request) -> Any:
    """200 when the database answers at the schema revision this RRM needs."""
    try:
        service(request).engine.readiness()
    except RRMError as exc:
        return JSONResponse(
            {"status": "unavailable", "reason": type(exc).__name__},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return {"status": "ready"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    """Request counts and latencies of this process, in Prometheus text format."""
    return Response(
        generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST
    )
