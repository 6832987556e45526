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

One module per server: `mariadb`, `postgres`, `redis`; what they share is in `base`
(`Server`, `ServerError`, `MissingBinaryError`, `free_port`, `running`, ...).
"""
