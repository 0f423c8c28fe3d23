"""vitmon, the service. Layers, outer to inner, each importing only the layers below it
(``pyproject.toml`` [tool.importlinter], checked by ``tests/test_layers.py``): :mod:`.cli` ->
``ui`` and :mod:`.devstack` -> :mod:`.reports` -> :mod:`.app` -> :mod:`.alerting` -> :mod:`.core`
-> :mod:`.store` -> :mod:`.testing` -> :mod:`.contract` -> :mod:`.codec` and :mod:`.errors`.
The detector plugins (``detectors/``) and ``slices/`` import only :mod:`.contract` (and
``slices``); the service reaches detectors only through entry points and the abilities the
contract declares."""
