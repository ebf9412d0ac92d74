"""The local Auth stand-in's signing key: ES256 (P-256), as a Supabase
project with signing keys uses, kept in <data-dir>/auth-signing-key.pem so
sessions survive a restart. Its public half is served as the JWKS.

LOCAL DEVELOPMENT ONLY: the private key sits unencrypted on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

KEY_FILE = "auth-signing-key.pem"


@dataclass(frozen=True, repr=False)
class SigningKey:
    private: ec.EllipticCurvePrivateKey
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        thumb = hashlib.sha256(json.dumps(self._public_jwk(), sort_keys=True).encode()).hexdigest()
        object.__setattr__(self, "kid", thumb[:16])

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SigningKey:
        """The key in data_dir, created (readable by its owner only) on first use."""
        path = data_dir / KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} is not an EC private key; delete it to get a new one")
            return cls(loaded)
        key = cls.generate()
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = key.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key

    def _public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        return jwk

    def jwks(self) -> dict[str, Any]:
        """The key set document, as GET /auth/v1/.well-known/jwks.json serves it."""
        public = {**self._public_jwk(), "kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}
        return {"keys": [public]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"})
