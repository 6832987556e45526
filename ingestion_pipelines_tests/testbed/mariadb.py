"""A real MariaDB server for the tests (`mariadbd` in a temporary directory, see `testbed`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ingestion_pipelines_tests.testbed.base import (
    Server,
    check_name,
    find_binary,
    run_setup,
)


class MariaDBServer(Server):
    """`mariadbd` with its own defaults file; TCP user `ingest`/`ingest` with all privileges.

    root@localhost authenticates by unix socket only (Debian default); clients use the
    `ingest` user over TCP, created by an init file on every start.
    """

    kind = "mariadb"
    # small and quick to create; a benchmark filling a table past it sizes it up (throwaway_database)
    buffer_pool_mb = 64
    user = "ingest"
    password = "ingest"

    @property
    def defaults_file(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "my.cnf"

    def _write_config(self) -> None:
        assert self.tmpdir is not None
        tmp = self.tmpdir
        (tmp / "init.sql").write_text(
            f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;\n"
        )
        run_as_root = "user = root\n" if os.geteuid() == 0 else ""
        self.defaults_file.write_text(
            "[mysqld]\n"
            f"datadir = {tmp / 'data'}\n"
            f"socket = {tmp / 'mysqld.sock'}\n"
            f"pid-file = {tmp / 'mysqld.pid'}\n"
            f"port = {self.port}\n"
            "bind-address = 127.0.0.1\n"
            f"{run_as_root}"
            "skip-log-bin\n"
            "skip-name-resolve\n"
            f"init-file = {tmp / 'init.sql'}\n"
            # as Debian's /etc/mysql/mariadb.conf.d/50-server.cnf (not read here)
            "character-set-server = utf8mb4\n"
            "collation-server = utf8mb4_general_ci\n"
            "max_connections = 200\n"
            "max_allowed_packet = 64M\n"
            "local_infile = ON\n"
            # durability settings stay at their defaults
            f"innodb_buffer_pool_size = {self.buffer_pool_mb}M\n"
            f"innodb_log_file_size = {max(32, self.buffer_pool_mb // 4)}M\n"
            "innodb_buffer_pool_load_at_startup = OFF\n"
            "innodb_buffer_pool_dump_at_shutdown = OFF\n"
            "performance_schema = OFF\n"
        )

    def _prepare(self) -> None:
        assert self.tmpdir is not None and self.log_path is not None
        self._mariadbd = find_binary("mariadbd", "mysqld", package="mariadb-server")
        install_db = find_binary("mariadb-install-db", "mysql_install_db", package="mariadb-server")
        self._write_config()
        run_setup(
            [
                install_db,
                f"--defaults-file={self.defaults_file}",  # must come first
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            self.tmpdir / "install-db.log",
            "mariadb-install-db",
            cwd=self.tmpdir,
        )

    def _spawn(self) -> None:
        self._write_config()  # the port may have changed
        super()._spawn()

    def _command(self) -> list[str]:
        return [self._mariadbd, f"--defaults-file={self.defaults_file}"]

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        """A PyMySQL connection over TCP as the `ingest` user (autocommit on)."""
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=kwargs.pop("connect_timeout", 5),
            **kwargs,
        )

    def _ping(self) -> None:
        self.connect(connect_timeout=2).close()

    def url(self, database: str | None = None) -> str:
        path = check_name(database) if database else ""
        return (
            f"mysql+pymysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{path}"
            "?charset=utf8mb4"
        )

    def create_database(self, name: str) -> str:
        check_name(name)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name` (if it exists), first killing the connections still using it."""
        check_name(name)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                (name,),
            )
            for (thread_id,) in cur.fetchall():
                with contextlib.suppress(Exception):  # it may have gone meanwhile
                    cur.execute(f"KILL CONNECTION {int(thread_id)}")
            cur.execute("SET SESSION lock_wait_timeout = 30")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def throwaway_database(
    stack: contextlib.ExitStack, name: str = "bench", *, buffer_pool_mb: int = 64
) -> str:
    """The URL of database `name` on a MariaDB started for a benchmark, stopped with `stack`
    (`buffer_pool_mb`: InnoDB's buffer pool, for a benchmark whose table outgrows 64 MB)."""
    server = MariaDBServer()
    server.buffer_pool_mb = buffer_pool_mb
    server = stack.enter_context(server)
    server.start()
    server.create_database(name)
    return server.url(name)


# ----------------------------------------------------------------------------- PostgreSQL
