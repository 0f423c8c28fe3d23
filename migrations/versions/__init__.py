"""The migration scripts, in revision order; each imports only Alembic, SQLAlchemy and
:mod:`migrations.columns`."""
