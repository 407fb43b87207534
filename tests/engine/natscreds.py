"""Decentralised NATS auth for tests: an operator, an account with JetStream, a user and its credentials
file (what ``nsc`` makes), and the server configuration trusting the operator (a memory resolver).

    op = Operator.new(); acct = op.account("BANK"); user = acct.user("bsp")
    config = op.server_config(tmp_path / "nats.conf", [acct])     # nats_server(..., args=["-c", config])
    creds = user.creds(tmp_path / "bsp.creds")

JWTs as nats-server reads them (nats-io/jwt v2): header ``{"typ": "JWT", "alg": "ed25519-nkey"}``, the claims
with ``jti`` the base32 SHA-512/256 of the claims without it, signed with the issuer's nkey (ed25519)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Key:
    kp: Any                 # nkeys.KeyPair

    @classmethod
    def new(cls, prefix: int) -> "Key":
        import nkeys
        return cls(nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix)))

    @property
    def public(self) -> str:
        return self.kp.public_key.decode()

    @property
    def seed(self) -> str:
        return self.kp.seed.decode()

    def jwt(self, subject: str, name: str, nats: dict) -> str:
        claims = {"iat": int(time.time()), "iss": self.public, "name": name, "sub": subject, "nats": nats}
        claims["jti"] = base64.b32encode(hashlib.new("sha512_256", json.dumps(claims).encode()).digest()) \
            .decode().rstrip("=")
        head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        body = _b64(json.dumps(claims).encode())
        return f"{head}.{body}.{_b64(self.kp.sign(f'{head}.{body}'.encode()))}"


@dataclass
class User:
    key: Key
    jwt: str

    def creds(self, path: Path) -> Path:
        path.write_text(f"-----BEGIN NATS USER JWT-----\n{self.jwt}\n------END NATS USER JWT------\n\n"
                        "************************* IMPORTANT *************************\n"
                        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
                        f"-----BEGIN USER NKEY SEED-----\n{self.key.seed}\n------END USER NKEY SEED------\n")
        path.chmod(0o600)
        return path


@dataclass
class Account:
    key: Key
    jwt: str

    def user(self, name: str) -> User:
        import nkeys
        key = Key.new(nkeys.PREFIX_BYTE_USER)
        return User(key, self.key.jwt(key.public, name, {"pub": {}, "sub": {}, "subs": -1, "data": -1,
                                                          "payload": -1, "type": "user", "version": 2}))


@dataclass
class Operator:
    key: Key

    @classmethod
    def new(cls) -> "Operator":
        import nkeys
        return cls(Key.new(nkeys.PREFIX_BYTE_OPERATOR))

    def account(self, name: str, *, jetstream: bool = True) -> Account:
        import nkeys
        key = Key.new(nkeys.PREFIX_BYTE_ACCOUNT)
        limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                  "conn": -1, "leaf": -1}
        if jetstream:
            limits.update({"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1})
        return Account(key, self.key.jwt(key.public, name, {"limits": limits, "type": "account", "version": 2}))

    def server_config(self, path: Path, accounts: list[Account]) -> Path:
        """The server's configuration: this operator trusted, ``accounts`` and a system account (JetStream
        needs one) preloaded."""
        system = self.account("SYS", jetstream=False)
        op_jwt = self.key.jwt(self.key.public, "BSP TEST OPERATOR",
                              {"system_account": system.key.public, "type": "operator", "version": 2})
        preload = "\n".join(f"  {a.key.public}: {a.jwt}" for a in [system, *accounts])
        path.write_text(f"operator: {op_jwt}\nsystem_account: {system.key.public}\nresolver: MEMORY\n"
                        f"resolver_preload: {{\n{preload}\n}}\n")
        return path
