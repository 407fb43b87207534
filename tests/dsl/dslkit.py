"""Shared paths for the dsl tests (a uniquely named module: ``conftest`` is not importable by name
when several test folders have one)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BILL_PAYMENT = REPO / "routes" / "bill_payment" / "bill_payment.route"
