"""Secrets at rest: Fernet (AES-128-CBC + HMAC) under a rotatable key list, the first key encrypting."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class Vault:
    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required (ENCORE_ENCRYPTION_KEYS)")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, secret: str | None) -> bytes | None:
        return None if secret is None else self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes | None) -> str | None:
        if sealed is None:
            return None
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise ValueError("a stored secret cannot be decrypted with the configured keys") from exc

    def reseal(self, sealed: bytes | None) -> bytes | None:
        """Re-encrypt under the first key (after a new key is put in front of the list)."""
        return None if sealed is None else self._fernet.rotate(sealed)
