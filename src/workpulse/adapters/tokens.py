"""Access tokens: HS256 JWTs (PyJWT), with a bounded cache of verified tokens.

PyJWT's decode costs ~65 µs here; a client repeats its token on every request until it expires,
so a verified token's claims are kept (keyed by the token string, at most `cache_size`) and only
the expiry is checked again on a hit. Expiry is checked against the clock port, not PyJWT's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import jwt
from cachetools import LRUCache

from workpulse.domain.errors import InvalidToken
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.roles import Role
from workpulse.services.ports import AccessClaims

ALGORITHM = "HS256"
_REQUIRED = ["sub", "org", "role", "sid", "exp", "iat", "typ"]


class JwtCodec:
    def __init__(self, secret: str, *, issuer: str = "workpulse", cache_size: int = 10_000) -> None:
        self._secret = secret
        self._issuer = issuer
        self._cache: LRUCache[str, AccessClaims] = LRUCache(maxsize=cache_size)

    def issue(self, claims: AccessClaims, now: datetime) -> str:
        payload = {
            "sub": str(claims.user_id),
            "org": str(claims.organization_id),
            "role": claims.role.value,
            "sid": str(claims.device_session_id),
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "iss": self._issuer,
            "typ": "access",
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str, now: datetime) -> AccessClaims:
        claims = self._cache.get(token)
        if claims is None:
            claims = self._verify(token)
            self._cache[token] = claims
        if now >= claims.expires_at:
            self._cache.pop(token, None)
            raise InvalidToken("the access token has expired")
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"verify_exp": False, "require": _REQUIRED},
            )
            if payload["typ"] != "access":
                raise InvalidToken()
            return AccessClaims(
                user_id=UserId(uuid.UUID(payload["sub"])),
                organization_id=OrganizationId(uuid.UUID(payload["org"])),
                role=Role(payload["role"]),
                device_session_id=DeviceSessionId(uuid.UUID(payload["sid"])),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken() from exc
