"""The rawest insert ceiling on this machine, shared by the benchmarks that measure writers
against it (`sidecar_throughput.py`, `depth_books.py`)."""

from __future__ import annotations

import time
from collections.abc import Sequence


def raw_executemany_rate(url: str, sql: str, tuples: Sequence[tuple], batch: int = 1000) -> float:
    """Rows per second of one PyMySQL connection inserting ready-made `tuples` with `sql` by
    `executemany`, a COMMIT per `batch` rows."""
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        charset="utf8mb4",
    )
    try:
        start = time.perf_counter()
        with conn.cursor() as cursor:
            for i in range(0, len(tuples), batch):
                cursor.executemany(sql, tuples[i : i + batch])
                conn.commit()
        return len(tuples) / (time.perf_counter() - start)
    finally:
        conn.close()
