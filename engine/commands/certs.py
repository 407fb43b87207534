"""``bsp certs dev DIR``: a development CA with a server and a client certificate.

For trying TLS channels and the admin API's mutual TLS on one machine; keys
are unencrypted, so never use these in production.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

certs_app = typer.Typer(name="certs", help="Development certificates (CA, server, client) for TLS and mTLS.",
                        no_args_is_help=True)


@certs_app.command("dev")
def dev(
    directory: Path = typer.Argument(..., help="Where to write ca.pem/.key, server.pem/.key, client.pem/.key."),
    name: Optional[List[str]] = typer.Option(
        None, "--name", "-n",
        help="Server name (DNS name or IP), repeatable; default localhost, 127.0.0.1, ::1."),
    client_cn: str = typer.Option("bsp-dev-client", "--client-cn", help="Subject CN of the client certificate."),
    days: int = typer.Option(90, "--days", min=1, max=825,
                             help="Validity of the leaf certificates (bsp warns of a certificate within 30 days "
                                  "of its expiry: a set made with 30 or fewer is warned of at once)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing set in DIRECTORY."),
) -> None:
    """Write a development CA, a server certificate and a client certificate into DIRECTORY.

    For tests and trials only, never production.  Exit 0 written; 2 DIRECTORY already holds
    a set (add --force to replace it).
    """
    existing = [p.name for p in (directory / "ca.key", directory / "server.key", directory / "client.key") if p.exists()]
    if existing and not force:
        typer.echo(f"error: {directory} already holds {', '.join(existing)}; pass --force to replace the set",
                   err=True)
        raise typer.Exit(2)
    from engine.certs import write_dev_set      # cryptography: loaded when a set is written, not for --help

    names = tuple(name) if name else ("localhost", "127.0.0.1", "::1")
    dev_set = write_dev_set(directory, server_names=names, client_cn=client_cn, days=days)
    typer.echo(f"wrote a development certificate set to {dev_set.directory} (not for production):")
    typer.echo(f"  CA                  {dev_set.ca}")
    typer.echo(f"  server ({', '.join(names)})  {dev_set.server_cert}  key {dev_set.server_key}")
    typer.echo(f"  client (CN {client_cn})  {dev_set.client_cert}  key {dev_set.client_key}")


def register(app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")


__all__ = ["register", "dev"]
