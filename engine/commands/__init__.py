"""CLI command groups.  Each module here defines ``register(app: typer.Typer)``."""
