"""The call log in PostgreSQL: models, engine, migrations."""
