"""Real MariaDB, PostgreSQL and Redis servers for the tests (no mocks).

Every server runs from its own temporary directory, listens on 127.0.0.1 only, on a free
TCP port, and never touches the system instances (`/var/lib/mysql`, port 3306, ...).
The directory is made in `base_dir`, else $TESTBED_TMPDIR, else the system temp folder
(PostgreSQL: /dev/shm when it has room, see `PostgresServer`).

    server = MariaDBServer().start()
    url = server.url(server.create_database("t1"))
    server.kill()      # SIGKILL: a database outage
    server.start()     # back on the same port, with the same data
    server.close()     # stop and remove the temporary directory

Start-up is waited for by polling a real client connection; a server that does not come up
raises `ServerError` with the tail of its log. A missing binary raises `MissingBinaryError`,
which tells you to run `make system-deps`: tests are never skipped silently.

Clean-up: `close()` is registered with `atexit`, every server runs in its own session
(process group), and on Linux it gets a parent-death signal (`setpriv --pdeathsig`), so the
servers go away with the test process even if that one is killed. Temporary directories left
by a killed test process are removed by the next run.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Self, TypeVar

SYSTEM_DEPS_HINT = (
    "run `make system-deps` (as root; it runs .ci/system-deps.sh, which installs the Debian "
    "packages mariadb-server, postgresql and redis-server)"
)
TMP_PREFIX = "ingest-testbed-"
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PORT_IN_USE = "address already in use"  # mariadbd, postgres and redis-server all say so


class ServerError(RuntimeError):
    """A test server could not be prepared, started or used."""


class MissingBinaryError(ServerError):
    """A server binary is not installed."""


# ----------------------------------------------------------------------------- helpers


def find_binary(*names: str, package: str) -> str:
    """The first of `names` found on PATH or in the usual sbin/bin folders."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for folder in _SEARCH_DIRS:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    raise MissingBinaryError(
        f"{' / '.join(names)} not found on PATH nor in {', '.join(_SEARCH_DIRS)} "
        f"(Debian package {package}); {SYSTEM_DEPS_HINT}"
    )


def find_postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (or PATH) holding postgres and initdb."""

    def version(path: str) -> tuple[int, ...]:
        digits = re.findall(r"\d+", Path(path).parent.name)
        return tuple(int(d) for d in digits)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in ("postgres", "initdb")):
            return Path(folder)
    raise MissingBinaryError(
        "postgres / initdb not found in /usr/lib/postgresql/*/bin nor on PATH "
        f"(Debian package postgresql); {SYSTEM_DEPS_HINT}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_name(name: str) -> str:
    """Database names are interpolated into SQL: allow identifiers only."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid database name {name!r} (letters, digits, _; max 63)")
    return name


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def remove_stale_dirs(base: str) -> None:
    """Remove testbed folders whose test process and servers are all gone (killed runs)."""
    for path in glob.glob(os.path.join(base, TMP_PREFIX + "*")):
        folder = Path(path)
        owner = _read_pid(folder / "owner.pid")
        if owner is None or pid_alive(owner):
            continue
        server = _read_pid(folder / "server.pid")
        if server is not None and pid_alive(server):
            continue
        shutil.rmtree(folder, ignore_errors=True)


_STALE_CHECKED: set[str] = set()


def _memory_dir(min_free: int = 1 << 30) -> str | None:
    """/dev/shm if it is a writable tmpfs with `min_free` bytes free (Docker's 64 MB is not)."""
    path = "/dev/shm"
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK) or stat.f_bavail * stat.f_frsize < min_free:
        return None
    return path


def _make_tmpdir(kind: str, base: str | None) -> Path:
    base = base or tempfile.gettempdir()
    if base not in _STALE_CHECKED:
        _STALE_CHECKED.add(base)
        remove_stale_dirs(base)
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{kind}-", dir=base))
    (folder / "owner.pid").write_text(f"{os.getpid()}\n")
    return folder


_SETPRIV = shutil.which("setpriv")


def _death_signal_prefix(sig: signal.Signals) -> list[str]:
    """`setpriv --pdeathsig SIG`: the kernel signals the server when our thread dies.

    The signal follows the thread that started the process, so it is only used from the
    main thread (a server started from a worker thread would die with that thread).
    """
    if _SETPRIV is None or threading.current_thread() is not threading.main_thread():
        return []
    return [_SETPRIV, f"--pdeathsig={sig.name.removeprefix('SIG')}", "--"]


_LIVE: set[Server] = set()
S = TypeVar("S", bound="Server")
_LIVE_LOCK = threading.Lock()


@atexit.register
def close_all() -> None:
    """Stop every server this process started (also registered with atexit)."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.close()


# ----------------------------------------------------------------------------- base class


class Server:
    """One server process in its own temporary directory, on a fixed port once started.

    `start()` is idempotent (it does nothing when the server is up), so it doubles as
    "make sure it runs". `stop()` shuts down cleanly, `kill()` crashes it (SIGKILL to the
    process group; PostgreSQL: immediate shutdown), `restart()` is stop + start. The port and
    the data directory are kept across all of them.
    """

    kind = "server"
    in_memory = False  # default to /dev/shm (see _memory_dir) rather than the temp folder
    stop_signal = signal.SIGTERM
    death_signal = signal.SIGTERM
    stop_timeout = 60.0

    def __init__(
        self, *, port: int | None = None, base_dir: str | None = None, start_timeout: float = 60
    ) -> None:
        self.port: int | None = port
        self._port_fixed = port is not None
        self.base_dir = base_dir
        self.start_timeout = start_timeout
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None  # duration of the first start, set-up included
        self.last_start_seconds: float | None = None
        self.starts = 0
        self._prepared = False
        self._closed = False
        self._ever_ready = False
        self._log: IO[bytes] | None = None

    # -- to be provided by subclasses
    def _prepare(self) -> None:
        """One-time set-up of the data directory (after the port is chosen)."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _ping(self) -> None:
        """Open and close a real client connection; raise if the server is not ready."""
        raise NotImplementedError

    def url(self, database: str | None = None) -> str:
        raise NotImplementedError

    # -- public API
    @property
    def log_path(self) -> Path | None:
        return self.tmpdir / f"{self.kind}.log" if self.tmpdir else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def start(self) -> Self:
        if self._closed:
            raise ServerError(f"{self.kind} server was closed")
        if self.is_running:
            return self
        self._reap()
        started = time.monotonic()
        if self.tmpdir is None:
            base = self.base_dir or os.environ.get("TESTBED_TMPDIR") or None
            if base is None and self.in_memory:
                base = _memory_dir()
            self.tmpdir = _make_tmpdir(self.kind, base)
            with _LIVE_LOCK:
                _LIVE.add(self)
        if self.port is None:
            self.port = free_port()
        if not self._prepared:
            self._prepare()
            self._prepared = True
        # A free port can be taken between free_port() and bind(): retry with another one,
        # but only before the first successful start (later the port must stay the same).
        attempts = 1 if (self._port_fixed or self._ever_ready) else 3
        for attempt in range(1, attempts + 1):
            try:
                self._spawn()
                self._wait_ready(started + self.start_timeout)
                break
            except _PortTaken:
                self._reap()
                if attempt == attempts:
                    raise ServerError(
                        f"{self.kind}: port {self.port} is in use; log tail:\n{self.log_tail()}"
                    ) from None
                self.port = free_port()
        self._ever_ready = True
        self.starts += 1
        self.last_start_seconds = time.monotonic() - started
        if self.startup_seconds is None:
            self.startup_seconds = self.last_start_seconds
        return self

    def stop(self) -> None:
        """Clean shutdown (SIGKILL to the process group if it takes over `stop_timeout`)."""
        if self.is_running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and everything in its process group (a crash, not a shutdown)."""
        if self.proc is not None:
            if self.proc.poll() is None:  # not reaped yet, so the group id is still ours
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reap()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its temporary directory; the object is then unusable."""
        if self._closed:
            return
        try:
            try:
                self.stop()
            except Exception:
                self.kill()
            self._after_close()
        finally:
            self._closed = True
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state} {self.tmpdir}>"

    # -- internals
    def _after_close(self) -> None:
        """Extra clean-up once the process is gone (override)."""

    def _spawn(self) -> None:
        assert self.tmpdir is not None and self.log_path is not None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self._log_offset = self._log.tell()
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log,
            "stderr": subprocess.STDOUT,
            "start_new_session": True,
            "cwd": self.tmpdir,
        }
        kwargs.update(self._popen_kwargs())
        command = _death_signal_prefix(self.death_signal) + self._command()
        self.proc = subprocess.Popen(command, **kwargs)
        (self.tmpdir / "server.pid").write_text(f"{self.proc.pid}\n")

    def _new_log_text(self) -> str:
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(getattr(self, "_log_offset", 0))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, deadline: float) -> None:
        delay = 0.01
        last: BaseException | None = None
        while True:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                text = self._new_log_text().lower()
                if _PORT_IN_USE in text:
                    raise _PortTaken()
                self._reap()
                raise ServerError(
                    f"{self.kind} exited with code {code} while starting on port {self.port}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                self._ping()
                return
            except Exception as exc:  # not ready yet: refused, starting up, no user yet...
                last = exc
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.kind} did not accept connections on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout:.0f} s (last error: {last!r}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None
        if self.proc is None and self._log is not None:
            self._log.close()
            self._log = None


class _PortTaken(Exception):
    pass


def _run_setup(command: list[str], log_path: Path, what: str, **kwargs: Any) -> None:
    with open(log_path, "ab") as log:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
            **kwargs,
        )
    if result.returncode != 0:
        raise ServerError(
            f"{what} failed with code {result.returncode}: {' '.join(command)}\n"
            f"log {log_path}:\n{_tail(log_path)}"
        )


# ----------------------------------------------------------------------------- MariaDB


class MariaDBServer(Server):
    """`mariadbd` with its own defaults file; TCP user `ingest`/`ingest` with all privileges.

    root@localhost authenticates by unix socket only (Debian default); clients use the
    `ingest` user over TCP, created by an init file on every start.
    """

    kind = "mariadb"
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
            # small and quick to create; durability settings stay at their defaults
            "innodb_buffer_pool_size = 64M\n"
            "innodb_log_file_size = 32M\n"
            "innodb_buffer_pool_load_at_startup = OFF\n"
            "innodb_buffer_pool_dump_at_shutdown = OFF\n"
            "performance_schema = OFF\n"
        )

    def _prepare(self) -> None:
        assert self.tmpdir is not None and self.log_path is not None
        self._mariadbd = find_binary("mariadbd", "mysqld", package="mariadb-server")
        install_db = find_binary("mariadb-install-db", "mysql_install_db", package="mariadb-server")
        self._write_config()
        _run_setup(
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


# ----------------------------------------------------------------------------- PostgreSQL


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
        _run_setup(
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


# ----------------------------------------------------------------------------- Redis


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


@contextlib.contextmanager
def running(server: S) -> Iterator[S]:
    """`with running(MariaDBServer()) as db: ...`: start, then close whatever happens."""
    try:
        yield server.start()
    finally:
        server.close()
