"""ViT traffic simulator: a real small Vision Transformer driven through scripted incidents.
A producer outside the service's layers: it may import the event format and Kafka clients of
``monitor.core`` (``ingest``, ``kafka``) and nothing else of vitmon; ``monitor.cli`` runs it as
``vitmon simulate``."""
