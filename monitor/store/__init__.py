"""PostgreSQL: the schema (:mod:`.schema`, created by the Alembic migrations, :mod:`.migrate`),
connections and retry (:mod:`.db`), and one module per table -- the only place in the service
with SQL (the UI's read model, ``ui/queries/``, is the other). Modules take a connection from
their caller, so a checkpoint's writes share one transaction. Imports only
:mod:`monitor.contract`, :mod:`monitor.errors`, ``migrations`` and libraries."""
