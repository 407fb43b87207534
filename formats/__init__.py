"""Pure message formats and framers: bytes in, values out; values in, bytes out.

Nothing in this package imports trio, duckdb or ``engine``.
"""
