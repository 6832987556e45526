"""What every test server shares: finding binaries, free ports, temporary directories, start-up
waits, clean-up at exit, and the `Server` base class (see the package docstring)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
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


def run_setup(command: list[str], log_path: Path, what: str, **kwargs: Any) -> None:
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


@contextlib.contextmanager
def running(server: S) -> Iterator[S]:
    """`with running(MariaDBServer()) as db: ...`: start, then close whatever happens."""
    try:
        yield server.start()
    finally:
        server.close()
