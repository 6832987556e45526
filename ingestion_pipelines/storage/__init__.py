"""The database: table definitions, migrations, engines and the one write path (`upsert`)."""
