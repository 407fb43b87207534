"""Transactions: steps as participants with compensation, business-key idempotency,
crash durability and recovery, ISO 8583 reversals (docs/transactions.md)."""
from engine.txn.manager import TxnManager, manager_for

__all__ = ["TxnManager", "manager_for"]
