"""Every business service's simulation, in port-plan order (docs/services/README.md)."""
from __future__ import annotations

from pathlib import Path

from engine.sim.services import (account_consolidation, bond_cashing, broker_system, card_payments, claims_payout,
                                 customer_service, customs_duty, fund_brokerage, fund_consolidation, fund_management,
                                 fund_subscription, insurance_brokerage, issuance, middle_office, payroll,
                                 premium_collection, receivables_payables,
                                 remittance, sales, standing_orders, trade_receiving)
from engine.sim.services.model import Service

ROUTES_DIR = Path(__file__).resolve().parents[3] / "routes"

SERVICES: tuple[Service, ...] = (
    fund_management.SERVICE,
    fund_brokerage.SERVICE,
    insurance_brokerage.SERVICE,
    remittance.SERVICE,
    trade_receiving.SERVICE,
    issuance.SERVICE,
    sales.SERVICE,
    bond_cashing.SERVICE,
    receivables_payables.SERVICE,
    fund_consolidation.SERVICE,
    *account_consolidation.SERVICES,
    broker_system.SERVICE,
    middle_office.SERVICE,
    customer_service.SERVICE,
    card_payments.SERVICE,
    standing_orders.SERVICE,
    fund_subscription.SERVICE,
    claims_payout.SERVICE,
    premium_collection.SERVICE,
    customs_duty.SERVICE,
    payroll.SERVICE,
)


def by_name(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(f"no service {name!r}; known: {', '.join(s.name for s in SERVICES)}")


def route_files(name: str) -> list[Path]:
    return sorted((ROUTES_DIR / name).glob("*.route"))
