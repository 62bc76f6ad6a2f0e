"""GET /metrics: Prometheus's text format, for loopback or a bearer token.

Without CLOUDIAG_METRICS_TOKEN only a client on loopback (after the trusted proxies' word,
see CLOUDIAG_TRUSTED_PROXIES) may scrape; with it, whoever sends
``Authorization: Bearer <token>``, and nobody else. The metrics hold no secrets, but they
say how big the fleet is and how busy.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cloudiag.api.context import AppState
from cloudiag.bus import health
from cloudiag.metrics import fleet as fleet_metrics
from cloudiag.services import fleet

log = logging.getLogger(__name__)


def allowed(state: AppState, request: Request) -> bool:
    """Whether this request may read the metrics."""
    token = state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(given.encode(), expected.encode())
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def refresh(state: AppState) -> None:
    """Set the fleet's gauges from the database and the bus; what cannot be read keeps its
    last value, and cloudiag_fleet_scrape_ok says 0."""
    ok = True
    try:
        async with state.db() as db:
            agents = await fleet.agents(db, state.settings.heartbeat_interval)
            servers = await fleet.servers(db)
            pending = await fleet.pending_jobs(db)
        fleet_metrics.record_database(
            (a.state for a in agents), (s.state for s in servers), pending
        )
    except Exception as exc:
        log.warning("metrics: could not read the fleet from the database: %s", exc)
        ok = False
    if state.js is not None:
        try:
            fleet_metrics.record_streams(await health.streams(state.js, consumers=False))
        except Exception as exc:
            log.warning("metrics: could not read the streams: %s", exc)
            ok = False
    fleet_metrics.SCRAPE_OK.set(1 if ok else 0)


async def metrics_endpoint(request: Request) -> Response:
    """The metrics of this server and of the fleet it sees."""
    state: AppState = request.app.state.cloudiag
    if not allowed(state, request):
        return PlainTextResponse(
            "metrics: loopback only, or set CLOUDIAG_METRICS_TOKEN and send it as a bearer token\n",
            status_code=403,
        )
    await refresh(state)
    return Response(generate_latest(REGISTRY), headers={"content-type": CONTENT_TYPE_LATEST})
