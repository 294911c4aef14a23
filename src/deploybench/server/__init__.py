"""The lab server: REST API over the core services (FastAPI), built by ``create_app``."""
