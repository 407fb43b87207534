"""A module that raises on import."""
raise RuntimeError("the wreck's configuration file is missing")


def register(registry):  # pragma: no cover - never reached
    pass
