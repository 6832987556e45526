"""Helpers for the control-plane tests: the `ingest` parser with the control commands, a local
webhook receiver, and a Dagster stack using the project's own dagster.yaml."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingestion_pipelines_tests.fakes.dagster_stack import PROJECT_ROOT, DagsterStack


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def ingest_parser() -> argparse.ArgumentParser:
    """`ingest`'s parser; the control commands are added here until cli.py registers them."""
    from ingestion_pipelines import cli
    from ingestion_pipelines.control.cli import add_commands

    parser = cli.build_parser()
    sub = _subparsers(parser)
    if "status" not in sub.choices:
        add_commands(sub, _subparsers(sub.choices["config"]))
    return parser


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def ingest(*argv: str) -> Outcome:
    """Run `ingest ARGV...` in this process; exit code and captured output."""
    from ingestion_pipelines.config.chain import ConfigError

    args = ingest_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = args.func(args)
        except (ConfigError, KeyError) as exc:  # what cli.main does
            print(f"ingest: {exc}", file=err)
            code = 2
    return Outcome(code, out.getvalue(), err.getvalue())


@dataclass
class Received:
    path: str
    body: Any


@dataclass
class WebhookServer:
    """Collects JSON POSTs on 127.0.0.1."""

    received: list[Received] = field(default_factory=list)
    status: int = 200

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                owner.received.append(Received(self.path, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path.split("?")[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ProjectStack(DagsterStack):
    """A DagsterStack whose instance uses the project's dagster.yaml (queued runs with per-worker
    limits, run retries, run monitoring)."""

    def _init_instance(self) -> None:
        shutil.copy(PROJECT_ROOT / "dagster.yaml", Path(self.home) / "dagster.yaml")
        super()._init_instance()


def project_workspace(folder: Path) -> Path:
    """The project's workspace.yaml when its definitions include the control plane; otherwise
    (before definitions.py registers `control.defs`) a workspace adding it."""
    from ingestion_pipelines_tests.fakes.dagster_stack import write_workspace

    text = (PROJECT_ROOT / "ingestion_pipelines" / "definitions.py").read_text()
    if "control" in text:
        return PROJECT_ROOT / "workspace.yaml"
    return write_workspace(
        folder,
        """
        import dagster as dg
        import ingestion_pipelines.definitions as project
        import ingestion_pipelines.control.defs as control

        defs = dg.Definitions.merge(project.defs, control.defs())
        """,
    )
