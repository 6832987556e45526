"""The operator's switch for each feed: the `<worker_id>_feed` sensor's state in Dagster.

    control = FeedControl(settings.dagster_url, refresh_s=10).start()
    control.enabled("binance_trades")   # True / False, or None while Dagster is not reachable
    control.set_enabled("binance_trades", False)   # what `ingest stop binance_trades` does
    control.stop()

A background thread reads the state of every `*_feed` sensor of the code location with one
GraphQL operation (`graphql/FeedSensors.graphql`) every `refresh_s` seconds and caches it. `enabled()` answers
from that cache: None when the last refresh failed or the sensor does not exist, so the caller
decides what to do while Dagster is away (the sidecar keeps its feeds as they are).
`set_enabled()` uses the operations `StartSensor` / `StopSensor` (the same as `ingest start/stop`) and updates the cache.
"""

import threading
import time
from typing import Any

from loguru import logger

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.dagster_api.client import operation
from ingestion_pipelines.dagster_api.http import DagsterHttp, DagsterHttpError
from ingestion_pipelines.dagster_api.names import (
    FEED_SENSOR_SUFFIX,
    LOCATION,
    REPOSITORY,
    feed_sensor_name,
)

_RUNNING = {"RUNNING", "DECLARED_IN_CODE"}


class FeedControlError(IngestError, RuntimeError):
    """Dagster could not be asked, or refused, to switch a feed."""


class FeedControl:
    """Cached ON/OFF state of each feed, from its switch sensor in Dagster (see module doc)."""

    def __init__(
        self,
        dagster_url: str,
        refresh_s: float = 10,
        *,
        location: str = LOCATION,
        repository: str = REPOSITORY,
        timeout_s: float = 5.0,
    ):
        self.http = DagsterHttp(dagster_url, timeout_s=timeout_s)
        self.refresh_s = refresh_s
        self.location = location
        self.repository = repository
        self.last_error: str | None = None
        self.last_refresh_at: float | None = None  # time.monotonic() of the last success
        self._states: dict[str, bool] = {}
        self._known = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> "FeedControl":
        """Refresh once now, then every `refresh_s` in a background thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="feed-control", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    # ---- reading --------------------------------------------------------------------------
    def _selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository}

    def fetch(self) -> dict[str, bool]:
        """The state of every feed switch now, by worker id. Raises `FeedControlError`."""
        try:
            data = self.http.graphql(
                operation("FeedSensors"), {"repositorySelector": self._selector()}
            )
        except DagsterHttpError as exc:
            raise FeedControlError(str(exc)) from None
        answer = data.get("sensorsOrError") or {}
        if answer.get("__typename") != "Sensors":
            raise FeedControlError(
                f"Dagster at {self.http.display_url}: {answer.get('__typename')}: "
                f"{answer.get('message', 'no sensors')} "
                f"(location {self.location!r}, repository {self.repository!r})"
            )
        states: dict[str, bool] = {}
        for sensor in answer.get("results") or []:
            name = sensor.get("name", "")
            if name.endswith(FEED_SENSOR_SUFFIX):
                status = (sensor.get("sensorState") or {}).get("status")
                states[name[: -len(FEED_SENSOR_SUFFIX)]] = status in _RUNNING
        return states

    def refresh(self) -> bool:
        """Re-read every switch now; False (and every state unknown) when Dagster cannot say."""
        try:
            states = self.fetch()
        except FeedControlError as exc:
            with self._lock:
                was_known = self._known
                self._states, self._known = {}, False
                self.last_error = str(exc)
            if was_known or self.last_refresh_at is None:
                logger.warning("feed switches unknown: {}", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            with self._lock:
                self._states, self._known = {}, False
                self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("feed switches unknown")
            return False
        with self._lock:
            changed = {k: v for k, v in states.items() if self._states.get(k) != v}
            recovered = not self._known and self.last_refresh_at is not None
            self._states, self._known = states, True
            self.last_error = None
            self.last_refresh_at = time.monotonic()
        if recovered:
            logger.info("feed switches readable again from {}", self.http.display_url)
        for worker_id, on in changed.items():
            logger.bind(worker_id=worker_id).info(
                "feed switch {}: {}", feed_sensor_name(worker_id), "on" if on else "off"
            )
        return True

    def enabled(self, worker_id: str) -> bool | None:
        """Whether the feed's switch is on; None when unknown (Dagster unreachable, no sensor)."""
        with self._lock:
            if not self._known:
                return None
            return self._states.get(worker_id)

    def states(self) -> dict[str, bool]:
        """Every known switch (empty while unknown)."""
        with self._lock:
            return dict(self._states) if self._known else {}

    # ---- switching ------------------------------------------------------------------------
    def _sensor(self, worker_id: str) -> dict[str, Any]:
        selector = {**self._selector(), "sensorName": feed_sensor_name(worker_id)}
        data = self.http.graphql(operation("FeedSensor"), {"sensorSelector": selector})
        answer = data.get("sensorOrError") or {}
        if answer.get("__typename") != "Sensor":
            raise FeedControlError(
                f"{worker_id}: no switch sensor {feed_sensor_name(worker_id)!r} in Dagster at "
                f"{self.http.display_url}: {answer.get('message', answer.get('__typename'))}"
            )
        return answer

    def set_enabled(self, worker_id: str, on: bool) -> bool:
        """Start (on) or stop the feed's switch sensor; the state Dagster now reports.
        Raises `FeedControlError` when Dagster cannot be reached or refuses."""
        try:
            if on:
                selector = {**self._selector(), "sensorName": feed_sensor_name(worker_id)}
                data = self.http.graphql(operation("StartSensor"), {"sensorSelector": selector})
                answer = data.get("startSensor") or {}
                if answer.get("__typename") != "Sensor":
                    raise FeedControlError(
                        f"{worker_id}: Dagster did not start {feed_sensor_name(worker_id)}: "
                        f"{answer.get('__typename')}: {answer.get('message', '')}"
                    )
                status = (answer.get("sensorState") or {}).get("status")
            else:
                sensor = self._sensor(worker_id)
                data = self.http.graphql(operation("StopSensor"), {"id": sensor["id"]})
                answer = data.get("stopSensor") or {}
                if answer.get("__typename") != "StopSensorMutationResult":
                    raise FeedControlError(
                        f"{worker_id}: Dagster did not stop {feed_sensor_name(worker_id)}: "
                        f"{answer.get('__typename')}: {answer.get('message', '')}"
                    )
                status = (answer.get("instigationState") or {}).get("status")
        except DagsterHttpError as exc:
            raise FeedControlError(f"{worker_id}: {exc}") from None
        now_on = status in _RUNNING
        with self._lock:
            if self._known:
                self._states[worker_id] = now_on
        logger.bind(worker_id=worker_id).info(
            "feed switch {} turned {}", feed_sensor_name(worker_id), "on" if now_on else "off"
        )
        return now_on
