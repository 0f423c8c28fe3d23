"""``vitmon``, the command line: :mod:`.main` builds the parser from one module per command
group, each of which imports :mod:`.common` (never :mod:`.main`). The outermost layer: may
import everything; nothing imports it (an import-linter contract)."""
