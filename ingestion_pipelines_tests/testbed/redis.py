"""A real Redis server for the tests (`redis-server` without persistence)."""

from __future__ import annotations

from typing import Any

from ingestion_pipelines_tests.testbed.base import (
    Server,
    find_binary,
)


class RedisServer(Server):
    """`redis-server` without persistence: a restart comes back empty (like a cache)."""

    kind = "redis"

    def _prepare(self) -> None:
        self._binary = find_binary("redis-server", package="redis-server")

    def _command(self) -> list[str]:
        assert self.tmpdir is not None
        return [
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.tmpdir),
            "--daemonize",
            "no",
        ]

    def client(self, db: int = 0, **kwargs: Any) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **kwargs)

    def _ping(self) -> None:
        client = self.client(socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    def url(self, db: int = 0) -> str:  # type: ignore[override]
        return f"redis://127.0.0.1:{self.port}/{db}"

    def flushall(self) -> None:
        client = self.client(socket_timeout=10)
        try:
            client.flushall()
        finally:
            client.close()
