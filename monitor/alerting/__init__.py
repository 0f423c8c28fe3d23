"""The alert engine: findings -> rules (:mod:`.rules`) -> state machine (:mod:`.state`) ->
PostgreSQL (:mod:`.store`, inside the checkpoint transaction by :mod:`.engine`) -> Alertmanager
(:mod:`.delivery`, a background sender reading the alerts table). Importing this package
imports nothing heavy."""
