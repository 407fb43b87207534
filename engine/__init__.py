"""The bsp engine: binds the route language's IR to trio sockets, threads and the DuckDB ledger."""
__version__ = "0.1.0"
