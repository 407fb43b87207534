"""Simulators for demos and benchmarks: the bank mainframe (client) and a biller (counterpart)."""
