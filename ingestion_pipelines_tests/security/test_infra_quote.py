"""docker/infra/mariadb.sh writes the stack's user, password and database into an SQL init
file. Found in review (issue 22): its `sql_quote` doubled quotes but not backslashes, so a
password ending in a backslash broke out of the literal. Here the script's own functions run
through bash and what they print is read back by a real MariaDB."""

from __future__ import annotations

import re
import subprocess

import pytest
from sqlalchemy import create_engine, text

from ingestion_pipelines.core.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "docker" / "infra" / "mariadb.sh"
HOSTILE = [
    "pass\\",  # as found: the closing quote escaped, the next token became SQL
    "a\\' OR 1=1 -- ",
    "it's",
    "\\\\'\\'';",
    "x`y` ; DROP DATABASE z; `",
    "Việt 📈 %s\n$(id)",
]


def _quoted(function: str, value: str) -> str:
    """`function value` run by bash with the script's own definition."""
    definitions = "\n".join(
        line for line in SCRIPT.read_text().splitlines() if re.match(r"^\w+_quote\(\)", line)
    )
    assert function in definitions
    out = subprocess.run(
        ["bash", "-c", f'{definitions}\n{function} "$1"', "_", value],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("value", HOSTILE)
def test_sql_quote_is_one_literal_holding_exactly_the_value(mariadb_url, value):
    literal = _quoted("sql_quote", value)
    engine = create_engine(mariadb_url)
    with engine.connect() as conn:
        got = conn.exec_driver_sql(f"SELECT {literal.replace('%', '%%')} AS v").scalar_one()
    assert got == value


def test_ident_quote_names_exactly_the_database(mariadb_url):
    name = "ingest`; DROP DATABASE x; `"
    engine = create_engine(mariadb_url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {_quoted('ident_quote', name)}")
        try:
            names = conn.execute(text("SHOW DATABASES")).scalars().all()
            assert name in names
        finally:
            conn.exec_driver_sql(f"DROP DATABASE {_quoted('ident_quote', name)}")


def test_every_value_in_the_init_sql_goes_through_a_quote_function():
    sql = SCRIPT.read_text().split("<<SQL", 1)[1].split("\nSQL\n", 1)[0]
    uses = re.findall(r"(.{7})\$\{?(MARIADB_\w+)", sql)
    assert len(uses) == 7
    bare = [name for before, name in uses if not before.endswith('quote "')]
    assert bare == [], f"unquoted values in the init SQL: {bare}"
