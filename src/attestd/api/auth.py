"""Administrator authentication for management calls.

``Authorization: Bearer <credential>``, where the credential is either a locally issued API key
(stored hashed; ``attestd apikey create``) or, when an OpenID issuer is configured, a JWT from
that issuer (signature from its JWKS, audience and role claim checked).
"""

from __future__ import annotations

from attestd.service import AttestationService, NotAuthorized

__all__ = ["Authenticator"]


class Authenticator:
    def __init__(self, service: AttestationService) -> None:
        self.service = service

    def authenticate(self, authorization: str | None) -> str:
        """The acting administrator's name (for the audit log), or :class:`NotAuthorized`."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorized(
                "this operation needs 'Authorization: Bearer <administrator credential>'"
            )
        name = self.service.store.verify_api_key(token)
        if name is not None:
            return f"apikey:{name}"
        raise NotAuthorized("the bearer token is not a valid administrator credential")
