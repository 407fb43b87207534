"""NATS channels against a real nats-server that requires credentials (a token, a user and password) and TLS
(a server certificate, mutual TLS): the auth and TLS options of engine/channels/nats_auth.py."""
from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import trio

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.channels.nats_publish import NatsPublisher
from engine.channels.options import ChannelConfigError
from natskit import eventually, nats_registry, nats_server, value

TOKEN = "t0ken-alpha-5e1f"
TOKEN2 = "t0ken-bravo-77c2"


def secret_file(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text + "\n")
    return p


@asynccontextmanager
async def publisher(options: dict[str, Any]) -> AsyncIterator[NatsPublisher]:
    pub = NatsPublisher("bus", {"subject": "pay.out", "stream": "PAY", "connect_timeout": 2, **options})
    async with trio.open_nursery() as n:
        await n.start(pub.run)
        yield pub
        n.cancel_scope.cancel()


async def published(pub: NatsPublisher, ref: str) -> bytes:
    await eventually(lambda: value(pub._ready.is_set()), "channel bus connected, its stream set up", timeout=10)
    (out,) = await pub.request_many([b'{"amount": "1.00"}'], keys=[ref])
    assert isinstance(out, bytes), out
    return out


async def test_a_token_from_a_file_is_what_a_server_requiring_one_accepts(tmp_path) -> None:
    token = secret_file(tmp_path, "nats.token", TOKEN)
    async with nats_server(tmp_path / "nats", args=["--auth", TOKEN]) as srv:
        async with publisher({"url": srv.url, "token_file": str(token)}) as pub:
            assert b'"seq":1' in await published(pub, "T-1")
            assert pub.link.auth.method == f"token (token_file {token})"


async def test_a_user_and_a_password_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NATS_BSP_PASSWORD", "pa55-word-9f")
    async with nats_server(tmp_path / "nats", args=["--user", "bsp", "--pass", "pa55-word-9f"]) as srv:
        async with publisher({"url": srv.url, "user": "bsp", "password_env": "NATS_BSP_PASSWORD"}) as pub:
            assert b'"seq":1' in await published(pub, "U-1")


async def test_a_refused_token_is_said_once_naming_the_channel_and_the_method_not_the_secret(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bsp.channel.nats")
    token = secret_file(tmp_path, "nats.token", "wrong-" + TOKEN)
    async with nats_server(tmp_path / "nats", args=["--auth", TOKEN]) as srv:
        async with publisher({"url": srv.url, "token_file": str(token)}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 4), "four refused attempts", timeout=15)
            (out,) = await pub.request_many([b"{}"], keys=["R-1"])
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # a refusing server may cut an attempt before its -ERR is read (seen on a loaded machine): a cut before the
    # first refusal is said as what it is, once; the refusal itself is said exactly once
    said = [t for t in loud if "refused the channel's credentials" in t]
    cuts = [t for t in loud if t not in said]
    assert len(said) == 1 and len(cuts) <= 1, loud
    assert all("cannot connect to NATS" in t and ("reset" in t.lower() or "closed" in t.lower()) for t in cuts), loud
    text = said[0]
    assert text.startswith(f"channel bus: NATS at {srv.url} refused the channel's credentials, token (token_file "
                           f"{token}): "), text
    assert "Authorization Violation (check the secret against the server's accounts;" in text
    assert "[outage start:" in text
    assert TOKEN not in caplog.text
    assert out.kind == "unreachable" and "refused the channel's credentials" in str(out)


async def test_a_token_rotated_in_its_file_is_sent_at_the_next_connection(tmp_path) -> None:
    """The server restarts with a new token (its accounts rotated); the file was rewritten: the channel reconnects
    with the new one, read again at the attempt, without a restart or a reload of the engine."""
    token = secret_file(tmp_path, "nats.token", TOKEN)
    async with nats_server(tmp_path / "nats", args=["--auth", TOKEN]) as srv:
        async with publisher({"url": srv.url, "token_file": str(token), "reconnect_wait": 0.1}) as pub:
            assert b'"seq":1' in await published(pub, "K-1")
            await srv.stop()
            token.write_text(TOKEN2 + "\n")
            srv.args = ["--auth", TOKEN2]
            await srv.start()
            await eventually(lambda: value(pub.link.connected and pub.link.reconnects >= 1),
                             "reconnected with the new token", timeout=15)
            assert b'"seq":2' in await published(pub, "K-2")


async def test_a_token_refused_at_reconnection_is_said_once_then_its_end(tmp_path, caplog) -> None:
    """Connected, then the server comes back with another token while the file still holds the old one: nats-py
    tries again every reconnect_wait (0.1s here), each refused; one warning for the outage, one for its end."""
    caplog.set_level(logging.DEBUG, logger="bsp.channel.nats")
    token = secret_file(tmp_path, "nats.token", TOKEN)
    async with nats_server(tmp_path / "nats", args=["--auth", TOKEN]) as srv:
        async with publisher({"url": srv.url, "token_file": str(token), "reconnect_wait": 0.1}) as pub:
            await published(pub, "O-1")
            caplog.clear()
            await srv.stop()
            srv.args = ["--auth", TOKEN2]
            await srv.start()
            refusals = lambda: sum("Authorization Violation" in r.getMessage() for r in caplog.records)  # noqa: E731
            await eventually(lambda: value(refusals() >= 5), "five refused reconnections", timeout=15)
            token.write_text(TOKEN2 + "\n")
            await eventually(lambda: value(pub.link.connected), "reconnected with the new token", timeout=15)
            # the end is said from nats-py's reconnected callback, which may run after `connected` reads true
            ended = lambda: any("[outage end:" in r.getMessage() for r in caplog.records)  # noqa: E731
            await eventually(lambda: value(ended()), "the outage's end said", timeout=15)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "credentials" in r.getMessage()]
    assert len(said) == 2, said
    assert said[0].startswith(f"channel bus: NATS at {srv.url} refused the channel's credentials, token (token_file "
                              f"{token}): "), said
    assert "[outage start:" in said[0] and "[outage end:" in said[1], said
    assert TOKEN not in caplog.text and TOKEN2 not in caplog.text


async def test_credentials_revoked_on_an_open_connection_reconnect_with_the_file_s_new_token(tmp_path) -> None:
    """The server's accounts reloaded (SIGHUP) with a new token: it ends the open connection with -ERR
    'Authorization Violation', on which nats-py closed the client for good (the channel dead until a restart).
    The channel reconnects, reading the token file again."""
    token = secret_file(tmp_path, "nats.token", TOKEN)
    conf = tmp_path / "nats.conf"
    conf.write_text(f'authorization {{ token: "{TOKEN}" }}\n')
    async with nats_server(tmp_path / "nats", args=["-c", str(conf)]) as srv:
        async with publisher({"url": srv.url, "token_file": str(token), "reconnect_wait": 0.1}) as pub:
            assert b'"seq":1' in await published(pub, "V-1")
            token.write_text(TOKEN2 + "\n")
            conf.write_text(f'authorization {{ token: "{TOKEN2}" }}\n')
            srv.reload()
            await eventually(lambda: value(pub.link.reconnects >= 1 and pub.link.connected),
                             "reconnected with the new token", timeout=15)
            assert b'"seq":2' in await published(pub, "V-2")


def tls_args(pki: Any, *, verify: bool = False) -> list[str]:
    args = ["--tls", "--tlscert", str(pki.server_cert), "--tlskey", str(pki.server_key)]
    return args + (["--tlsverify", "--tlscacert", str(pki.ca)] if verify else [])


async def test_a_credentials_file_logs_in_to_a_server_trusting_its_operator(tmp_path, caplog) -> None:
    """Decentralised auth (an operator, an account, a user: what ``nsc`` makes): the user's credentials file
    is accepted; one of a user whose account the server does not know is refused, said naming the file."""
    from natscreds import Operator
    op = Operator.new()
    bank = op.account("BANK")
    config = op.server_config(tmp_path / "nats.conf", [bank])
    good = bank.user("bsp").creds(tmp_path / "bsp.creds")
    stranger = Operator.new().account("OTHER").user("bsp").creds(tmp_path / "stranger.creds")
    caplog.set_level(logging.WARNING, logger="bsp.channel.nats")
    async with nats_server(tmp_path / "nats", args=["-c", str(config)]) as srv:
        async with publisher({"url": srv.url, "creds_file": str(good)}) as pub:
            assert b'"seq":1' in await published(pub, "K-1")
        async with publisher({"url": srv.url, "creds_file": str(stranger)}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 2), "two attempts", timeout=15)
            why = pub.link.last_error
    # the server's -ERR, or (when its close beats our reading of it: a reset) the cut with what to check
    assert why.startswith(f"channel bus: NATS at {srv.url} refused the channel's credentials, credentials "
                          f"(creds_file {stranger}): Authorization Violation") or \
        why.startswith("ConnectionResetError: [Errno 104] Connection reset by peer (the server closed the connection "
                       f"during the login, credentials (creds_file {stranger}): it may refuse the credentials"), why
    seed = [ln for ln in stranger.read_text().splitlines() if ln.startswith("SU")][0]
    assert seed not in caplog.text


def test_a_credentials_file_without_the_nkeys_package_stops_the_start_saying_what_to_install(
        tmp_path, monkeypatch) -> None:
    """nats-py signs the server's nonce with the nkeys package, which bsp does not require: without it the
    start stops with one line, not a traceback at the first connection."""
    monkeypatch.setitem(sys.modules, "nkeys", None)        # as if not installed: find_spec answers None
    creds = tmp_path / "bsp.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n"
                     "-----BEGIN USER NKEY SEED-----\nSUX\n------END USER NKEY SEED------\n")
    with pytest.raises(ChannelConfigError) as err:
        NatsPublisher("bus", {"url": "nats://127.0.0.1:4222", "subject": "pay.out", "creds_file": str(creds)})
    assert str(err.value) == ("channel bus: option creds_file: NATS credentials need the nkeys package, which is "
                              "not installed: pip install 'bsp[nats-creds]' (or pip install nkeys) into bsp's "
                              "environment")


async def test_tls_with_the_bank_s_ca_and_a_token(tmp_path, pki) -> None:  # noqa: F811
    token = secret_file(tmp_path, "nats.token", TOKEN)
    async with nats_server(tmp_path / "nats", args=tls_args(pki) + ["--auth", TOKEN]) as srv:
        url = srv.url.replace("nats://", "tls://")
        async with publisher({"url": url, "token_file": str(token), "tls_ca": str(pki.ca)}) as pub:
            assert b'"seq":1' in await published(pub, "S-1")
            assert pub.link.nc._transport._io_writer.get_extra_info("ssl_object") is not None


async def test_mutual_tls(tmp_path, pki) -> None:  # noqa: F811
    async with nats_server(tmp_path / "nats", args=tls_args(pki, verify=True)) as srv:
        async with publisher({"url": srv.url, "tls_ca": str(pki.ca), "tls_cert": str(pki.client_cert),
                              "tls_key": str(pki.client_key)}) as pub:
            assert b'"seq":1' in await published(pub, "M-1")


async def test_a_server_asking_for_a_client_certificate_says_which_options_give_it(tmp_path, pki) -> None:  # noqa: F811
    async with nats_server(tmp_path / "nats", args=tls_args(pki, verify=True)) as srv:
        async with publisher({"url": srv.url, "tls_ca": str(pki.ca)}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 2), "two attempts", timeout=15)
            why = pub.link.last_error
    # (TLS 1.3: the server's alert, or a broken pipe at the first write after the handshake)
    assert "client certificate: set tls_cert and tls_key on this channel" in why, why


async def test_a_server_certificate_from_another_ca_is_refused(tmp_path, pki) -> None:  # noqa: F811
    """An attempt ends with the refused handshake, not at connect_timeout: nats-py waited for the plain socket
    under the failed TLS upgrade to close, which it never heard of (for ever, when a cancellation was lost)."""
    async with nats_server(tmp_path / "nats", args=tls_args(pki)) as srv:
        async with publisher({"url": srv.url, "tls_ca": str(pki.stranger_ca), "connect_timeout": 60}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 2), "two attempts", timeout=15)
            why = pub.link.last_error
    assert "gave up" not in why, why
    assert why.startswith("TLS: CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate (`tls_ca` must hold "
                          "the CA that issued the counterpart's certificate (without `tls_ca`: the system's roots))"), why


async def test_a_server_certificate_for_its_dns_name_reached_by_ip_with_tls_server_name(tmp_path) -> None:
    """The bank's certificate names nats.bank.internal; the engine dials the address (no DNS for that name on
    the engine's host, or a load balancer's IP): refused, the error naming the option; with
    ``tls_server_name`` the certificate is checked for that name, and sent as SNI."""
    from engine.certs import new_ca
    ca = new_ca("bank CA")
    ca_pem, _ = ca.write(tmp_path / "pki" / "ca")
    cert, key = ca.issue("nats.bank.internal", dns=["nats.bank.internal"], server=True).write(tmp_path / "pki" / "nats")
    async with nats_server(tmp_path / "nats", args=["--tls", "--tlscert", str(cert), "--tlskey", str(key)]) as srv:
        url = srv.url.replace("nats://", "tls://")
        async with publisher({"url": url, "tls_ca": str(ca_pem)}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 2), "two attempts", timeout=15)
            why = pub.link.last_error
        assert "IP address mismatch" in why and "set tls_server_name to a name it carries" in why, why
        async with publisher({"url": url, "tls_ca": str(ca_pem), "tls_server_name": "nats.bank.internal"}) as pub:
            assert b'"seq":1' in await published(pub, "H-1")
            ssl_object = pub.link.nc._transport._io_writer.get_extra_info("ssl_object")
            assert ssl_object.server_hostname == "nats.bank.internal"


async def test_a_tls_url_to_a_server_without_tls_is_refused_before_the_token_is_sent(tmp_path) -> None:
    """nats-py goes TLS only when the server asks for it: a tls:// url to a plain server connected in clear,
    sending the token."""
    token = secret_file(tmp_path, "nats.token", TOKEN)
    async with nats_server(tmp_path / "nats", args=["--auth", TOKEN]) as srv:
        async with publisher({"url": srv.url.replace("nats://", "tls://"), "token_file": str(token)}) as pub:
            await eventually(lambda: value(pub.link.connect_attempts >= 2), "two attempts", timeout=15)
            assert not pub.link.connected
            assert "the server does not offer TLS and the channel requires it" in pub.link.last_error


def test_a_missing_secret_stops_the_start_naming_channel_option_and_path(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_NATS_TOKEN", raising=False)
    with pytest.raises(ChannelConfigError) as bad:
        NatsPublisher("bus", {"url": "nats://127.0.0.1:4222", "subject": "a", "token_file": str(tmp_path / "t")})
    assert str(bad.value) == (f"channel bus: option token_file: cannot read secret file {str(tmp_path / 't')!r}: "
                              f"No such file or directory")
    with pytest.raises(ChannelConfigError) as bad:
        NatsPublisher("bus", {"url": "nats://127.0.0.1:4222", "subject": "a", "user": "u",
                              "password_env": "NO_SUCH_NATS_TOKEN"})
    assert "channel bus: option password_env: environment variable NO_SUCH_NATS_TOKEN is not set" in str(bad.value)
    with pytest.raises(ChannelConfigError) as bad:
        NatsPublisher("bus", {"url": "nats://127.0.0.1:4222", "subject": "a", "tls_ca": str(tmp_path / "ca.pem")})
    assert str(bad.value).startswith(f"channel bus: option tls_ca: CA bundle file {str(tmp_path / 'ca.pem')!r} "
                                     f"does not exist")


def test_a_secret_read_by_the_channel_is_scrubbed_from_the_log(tmp_path) -> None:
    from engine.ops.logs import setup_logging

    scrub = setup_logging("warning", "text")
    try:
        token = secret_file(tmp_path, "nats.token", "scrub-me-" + TOKEN)
        NatsPublisher("bus", {"url": "nats://127.0.0.1:4222", "subject": "a", "token_file": str(token)})
        assert scrub(f"CONNECT auth_token=scrub-me-{TOKEN}") == "CONNECT auth_token=***"
    finally:
        setup_logging("warning", "text")


def checked(tmp_path: Path, option: str) -> list[Any]:
    """The errors ``bsp check`` finds in the publish route of test_channels_nats.py with ``option`` added."""
    from dsl.load import compile_paths
    from test_channels_nats import PUBLISH_ROUTE

    text = PUBLISH_ROUTE.format(url="nats://127.0.0.1:4222").replace("timeout = 2s", option)
    (tmp_path / "t.route").write_text(text)
    res = compile_paths([tmp_path / "t.route"], nats_registry())
    return [d for d in res.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("option, expected", [
    ('token_env = "A"\n    token_file = "/x"', "give token_env or token_file, not both"),
    ('user = "bsp"', "option user: a user and its password go together"),
    ('password_file = "/x"', "option password_file: a user and its password go together"),
    ('token_env = "A"\n    creds_file = "/x"', "options token_env/token_file and creds_file: give one way"),
    ('tls_key = "/x"', "option tls_key given without tls_cert"),
    ('tls_server_name = "nats://nats.bank.internal:4222"', "option tls_server_name: expected a host name"),
])
def test_bsp_check_refuses_auth_options_that_cannot_work(tmp_path, option, expected) -> None:
    errors = checked(tmp_path, option)
    assert len(errors) == 1 and errors[0].message.startswith(f"channel bus: {expected}"), errors


def test_bsp_check_does_not_read_the_secrets(tmp_path, pki) -> None:  # noqa: F811
    """The secret files need not be there where the route is checked (a build machine): the run reads them.
    The certificates are checked as every channel's are."""
    option = (f'token_file = "/run/secrets/none"\n    tls_ca = "{pki.ca}"\n'
              f'    tls_cert = "{pki.client_cert}"\n    tls_key = "/run/secrets/none.key"')
    assert checked(tmp_path, option) == []
