"""``mlsd status|features|materialize SYSTEM``: where a system stands, its feature views, and filling them online.

``status``: trained (and when), the champion, whether a service answers for this home (its
``serving.json`` and ``/healthz``), the monitor's last window and its alerts. ``features``: every view
of the system's feature store with its version, entity keys, how far it was materialized, the rows and
newest event time in the online store, and the newest source event (the freshness gap between the
two). ``materialize``: Feast's ``materialize-incremental``: each view's values up to an end time (the
newest source event by default) into the online store.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from mlsd.core.errors import MlsdError
from mlsd.core.timeutil import to_us, utc_text
from mlsd.lifecycle.manage import require_home, require_trained, served_model
from mlsd.system import System, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore


def _date_us(micros: int | None) -> str | None:
    return None if micros is None else utc_text(micros / 1e6)


def system_status(system: System, ws: Workspace) -> dict[str, Any]:
    """Trained? champion? serving where? the monitor's last window and open alerts."""
    from mlsd.lifecycle.serve import probe, serving_record
    from mlsd.monitoring.runner import read_state

    require_home(ws, system)
    state: dict[str, Any] = {"system": system.name, "home": str(ws.home), "trained": ws.run_state() is not None}
    state["trained_at"] = utc_text(ws.run_file.stat().st_mtime) if state["trained"] else None
    state["champion"] = None
    if state["trained"] and (os.environ.get("MLFLOW_TRACKING_URI") or (ws.home / "mlflow.db").exists()):
        name = served_model(system, ws)
        found = [v for v in ws.registry.versions(name) if "champion" in v.aliases]
        if found:
            state["champion"] = {"model": name, "version": found[0].version, "kind": found[0].kind}
    record = serving_record(ws.home)
    health = probe(str(record["host"]), int(record["port"])) if record else None
    state["serving"] = ({"url": record["url"], "pid": record["pid"], "model_version": health.get("model_version"),
                         "status": health.get("status")} if record and health else None)
    monitor = read_state(ws.monitoring)
    if monitor is None:
        state["monitor"] = None
    else:
        windows, alerts = monitor.get("windows", []), monitor.get("alerts", [])
        last = windows[-1] if windows else None
        open_alerts = [a for a in alerts if last is not None and a["window_start"] == last["start"]]
        state["monitor"] = {
            "windows": len(windows), "alerts": len(alerts),
            "last_window": None if last is None else {"start": utc_text(last["start"]), "end": utc_text(last["end"]),
                                                      "requests": last.get("requests")},
            "open_alerts": [{"column": a["column"], "psi": a.get("psi"), "reasons": a.get("reasons")}
                            for a in open_alerts]}
    return state


def format_status(state: dict[str, Any]) -> str:
    lines = [f"{state['system']} (home {state['home']})"]
    trained = f"yes, {state['trained_at']}" if state["trained"] else f"no (mlsd run {state['system']})"
    lines.append(f"  trained:  {trained}")
    champion = state["champion"]
    lines.append(f"  champion: {champion['model']} v{champion['version']} ({champion['kind']})" if champion
                 else "  champion: none")
    serving = state["serving"]
    lines.append(f"  serving:  {serving['url']} (pid {serving['pid']}, model v{serving['model_version']}, "
                 f"{serving['status']})" if serving else "  serving:  not serving (mlsd serve " + state["system"] + ")")
    monitor = state["monitor"]
    if monitor is None:
        lines.append("  monitor:  no windows yet")
    else:
        last = monitor["last_window"]
        window = f"; last window {last['start']} .. {last['end']} ({last['requests']} requests)" if last else ""
        lines.append(f"  monitor:  {monitor['windows']} windows, {monitor['alerts']} alerts in all{window}")
        for alert in monitor["open_alerts"]:
            psi = alert["psi"]
            lines.append(f"    open alert: {alert['column']}" + (f" (PSI {psi:.2f})" if psi is not None else ""))
    return "\n".join(lines)


def _feature_store(system: System, ws: Workspace) -> FeatureStore:
    require_trained(ws, system)
    make = getattr(system, "feature_store", None)
    if not callable(make):
        raise MlsdError(f"{system.name} does not expose its feature store (System.feature_store)")
    store: FeatureStore = make(ws)
    return store


def feature_views(system: System, ws: Workspace) -> list[dict[str, Any]]:
    """Each view: kind, version, keys, features, materialized until, online rows and newest value, newest source."""
    from mlsd.features.definitions import AggregationView, FeatureView, OnDemandView

    store = _feature_store(system, ws)
    try:
        stats_of = getattr(store.online, "view_stats", None)
        stats: dict[str, tuple[int, int | None]] = stats_of() if callable(stats_of) else {}
        rows = []
        for name, view in sorted(store.views.items()):
            kind = ("on-demand" if isinstance(view, OnDemandView) else "aggregation"
                    if isinstance(view, AggregationView) else "feature" if isinstance(view, FeatureView) else "?")
            entry: dict[str, Any] = {"view": name, "kind": kind, "version": view.version,
                                     "features": list(view.feature_names)}
            if not isinstance(view, OnDemandView):
                online_rows, newest = stats.get(name, (0, None))
                source = store.latest_event_us([name])
                until = store.materialized_until(name)
                entry.update({"keys": list(view.join_keys), "materialized_until": _date_us(until),
                              "online_rows": online_rows, "online_newest": _date_us(newest),
                              "source_newest": _date_us(source),
                              "lag_s": None if source is None or newest is None else max(0.0, (source - newest) / 1e6)})
            rows.append(entry)
        return rows
    finally:
        store.online.close()


def format_views(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        head = f"{r['view']} v{r['version']} ({r['kind']}, {len(r['features'])} features"
        if r["kind"] == "on-demand":
            lines.append(head + ", computed at request time)")
            continue
        lag = "" if r["lag_s"] is None else f", {r['lag_s']:,.0f} s behind the source"
        lines.append(head + f", keys {', '.join(r['keys'])})")
        lines.append(f"  online: {r['online_rows']:,} rows, newest {r['online_newest'] or '-'}{lag}; "
                     f"materialized until {r['materialized_until'] or 'never'}; newest source event "
                     f"{r['source_newest'] or '-'}")
    return "\n".join(lines)


def materialize(system: System, ws: Workspace, until: str | None = None,
                views: list[str] | None = None) -> dict[str, Any]:
    """Materialize the system's views up to ``until`` (ISO time; default: the newest source event)."""
    store = _feature_store(system, ws)
    try:
        unknown = sorted(set(views or []) - set(store.views))
        if unknown:
            raise MlsdError(f"unknown view(s) {', '.join(unknown)}; views: {', '.join(sorted(store.views))}")
        if until is not None:
            try:
                end = to_us(dt.datetime.fromisoformat(until))  # a naive time is UTC, as everywhere in mlsd
            except ValueError as exc:
                raise MlsdError(f"--until: not an ISO date/time: {until!r}") from exc
        else:
            latest = store.latest_event_us(views)
            if latest is None:
                raise MlsdError(f"{system.name}: the feature views' sources hold no events to materialize")
            end = latest
        written = store.materialize(views, end_us=end)
        return {"until": _date_us(end), "written": written}
    finally:
        store.online.close()
