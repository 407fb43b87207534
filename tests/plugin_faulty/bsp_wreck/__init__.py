"""Plugins that go wrong, one entry point each (see pyproject.toml)."""
NOT_CALLABLE = 42
