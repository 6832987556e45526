"""A real PostgreSQL server for the tests (`initdb` + `postgres` in a temporary directory)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from ingestion_pipelines_tests.testbed.base import (
    SYSTEM_DEPS_HINT,
    Server,
    ServerError,
    check_name,
    find_postgres_bindir,
    run_setup,
)


def _postgres_run_user() -> pwd.struct_passwd | None:
    """Who runs postgres: the `postgres` system user (or `nobody`) as root, else ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError(
        "PostgreSQL refuses to run as root and there is neither a `postgres` nor a `nobody` "
        f"user; {SYSTEM_DEPS_HINT}"
    )


def _check_traversable(folder: Path) -> None:
    """Every parent of `folder` must be searchable by others (postgres runs as another user)."""
    for parent in folder.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            raise ServerError(
                f"{parent} is not searchable by other users, so the postgres user cannot reach "
                f"{folder}; set TMPDIR (or base_dir) to a folder such as /tmp"
            )


class PostgresServer(Server):
    """`postgres` (run directly, as a non-root user) with a `ingest`/`ingest` superuser.

    TCP connections need the password (scram-sha-256). `fsync` and `full_page_writes` are
    off to keep tests fast: that only matters for an operating-system crash, so committed
    data still survives `kill()`. The cluster lives in /dev/shm when there is room: on ext4,
    CREATE DATABASE (about 300 files) takes ~280 ms of inode allocation, on tmpfs ~10 ms.
    """

    kind = "postgres"
    in_memory = True
    user = "ingest"
    password = "ingest"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit
    death_signal = signal.SIGQUIT  # "immediate" shutdown

    @property
    def data_dir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    def _prepare(self) -> None:
        assert self.tmpdir is not None
        bindir = find_postgres_bindir()
        self._postgres = str(bindir / "postgres")
        self._run_user = _postgres_run_user()
        if self._run_user is not None:
            _check_traversable(self.tmpdir)
            os.chown(self.tmpdir, self._run_user.pw_uid, self._run_user.pw_gid)
        pwfile = self.tmpdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_user is not None:
            os.chown(pwfile, self._run_user.pw_uid, self._run_user.pw_gid)
        run_setup(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            self.tmpdir / "initdb.log",
            "initdb",
            **self._popen_kwargs(),
        )
        pwfile.unlink()
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# ingestion_pipelines test bed\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
                "shared_buffers = 32MB\n"
                "fsync = off\n"
                "full_page_writes = off\n"
                "timezone = 'UTC'\n"
                "log_timezone = 'UTC'\n"
                "logging_collector = off\n"
            )

    def _popen_kwargs(self) -> dict[str, Any]:
        assert self.tmpdir is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "HOME": str(self.tmpdir),
        }
        kwargs: dict[str, Any] = {"cwd": self.tmpdir, "env": env}
        if self._run_user is not None:
            kwargs.update(user=self._run_user.pw_uid, group=self._run_user.pw_gid, extra_groups=[])
        return kwargs

    def _command(self) -> list[str]:
        return [self._postgres, "-D", str(self.data_dir), "-p", str(self.port)]

    def kill(self) -> None:
        """A crash: "immediate" shutdown (SIGQUIT), then SIGKILL to the group if it hangs.

        Like SIGKILL there is no shutdown checkpoint (the next start replays the WAL) and
        clients lose their connections; unlike SIGKILL of the whole process group, the
        postmaster still reaps its children, so no orphans are left for init to collect.
        """
        if self.is_running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        super().kill()

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg2 connection over TCP as `ingest` (autocommit on)."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            connect_timeout=kwargs.pop("connect_timeout", 5),
            **kwargs,
        )
        conn.autocommit = True
        return conn

    def _ping(self) -> None:
        self.connect(connect_timeout=2).close()

    def url(self, database: str | None = None) -> str:
        path = check_name(database) if database else ""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{path}"

    def create_database(self, name: str) -> str:
        check_name(name)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name` (if it exists), terminating the sessions still connected to it."""
        check_name(name)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _after_close(self) -> None:
        # After kill() the postmaster leaves its small SysV shared memory segment behind
        # (a restart would reuse it); remove it when the cluster goes away for good.
        if self.tmpdir is None:
            return
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return
        if len(lines) >= 7 and len(lines[6].split()) == 2 and shutil.which("ipcrm"):
            shmid = lines[6].split()[1]
            subprocess.run(
                ["ipcrm", "-m", shmid],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
