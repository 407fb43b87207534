"""The route language: grammar, AST, checker, IR and expression compiler.

Nothing in this package imports trio, duckdb or ``engine``.
"""
