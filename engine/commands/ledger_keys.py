"""``--deployment FILE`` / ``--env NAME`` for the operator commands that read a ledger with its keys
(``bsp audit verify``, ``bsp deals show --reveal``, ``bsp dead show / retry / purge``), or the ledger
only (``bsp deals``, ``bsp dead list``: ``DEPLOYMENT_LEDGER_OPT``), so that one flag works everywhere.

They take the ledger and its keys from the deployment file as ``bsp run`` does (the same resolver,
engine/ops/runsettings.run_keys) and by the same rule: ``--ledger`` wins over the file's ``ledger:``,
the file's ``ledger.audit_key`` / ``ledger.field_keys`` win over BSP_AUDIT_KEY(_FILE) /
BSP_FIELD_KEYS(_FILE).

    found = ledger_keys(ledger, deployment, env, "bsp audit verify", audit=True)
    found.path, found.keys.audit_key, found.keys.keyring
    found.deployment      # the loaded deployment file (its route_files, channel_overrides), or None
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from engine.defaults import DEFAULT_LEDGER

LEDGER_OPT = typer.Option(None, "--ledger", help=f"The ledger file (DuckDB); default: the deployment file's "
                          f"ledger:, else {DEFAULT_LEDGER}.")
DEPLOYMENT_OPT = typer.Option(None, "--deployment", metavar="FILE",
                              help="The deployment file (platform.yaml) bsp run serves: the ledger and its "
                                   "keys (ledger.audit_key, ledger.field_keys) from there, as bsp run takes "
                                   "them; --ledger still wins, the file wins over the BSP_* variables.")
DEPLOYMENT_LEDGER_OPT = typer.Option(None, "--deployment", metavar="FILE",
                                     help="The deployment file (platform.yaml) bsp run serves: its ledger, "
                                          "as bsp run takes it; --ledger still wins.")
ENV_OPT = typer.Option(None, "--env", help="With --deployment: its environment (else $BSP_ENV).")


@dataclass
class LedgerKeys:
    path: Path
    keys: Any                 # engine.ops.runsettings.RunKeys
    deployment: Any = None    # engine.deploy.Deployment when --deployment was given


def ledger_keys(ledger: Optional[Path], deployment: Optional[Path], env: Optional[str], command: str, *,
                audit: bool = False, fields: bool = False) -> LedgerKeys:
    """The ledger path and the keys this command needs; a problem is one ``error:`` line and an exit:
    2 for a usage error or an unusable key (as bsp run), 1 for a deployment file with errors."""
    from engine.ops.runsettings import NO_AUDIT_KEY, OpsConfigError, run_keys

    dep = None
    if deployment is None:
        if env is not None:
            raise typer.BadParameter("--env selects an environment of the deployment file: add "
                                     "--deployment platform.yaml", param_hint="--env")
    else:
        from engine.deploy import DeploymentError, load_deployment
        if not deployment.is_file():
            typer.echo(f"error: --deployment {deployment}: no such file; give the platform.yaml bsp run serves",
                       err=True)
            raise typer.Exit(2)
        try:
            dep = load_deployment(deployment, env=env)
        except DeploymentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    try:
        keys = run_keys(dep, audit=audit, fields=fields, command=command)
    except OpsConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for warning in keys.warnings:
        if warning != NO_AUDIT_KEY:          # each command says itself what a missing key means for it
            typer.echo(f"warning: {warning}", err=True)
    path = ledger if ledger is not None else (dep.ledger_path if dep is not None else DEFAULT_LEDGER)
    return LedgerKeys(path=path, keys=keys, deployment=dep)


def missing_in_env(env: Optional[str]) -> str:
    """`` (environment uat, nor its base)`` for a key the deployment file does not set: where it was looked."""
    import os

    name = env or os.environ.get("BSP_ENV")
    return f" (environment {name}, nor its base settings)" if name else ""


__all__ = ["DEPLOYMENT_LEDGER_OPT", "DEPLOYMENT_OPT", "ENV_OPT", "LEDGER_OPT", "LedgerKeys", "ledger_keys", "missing_in_env"]
