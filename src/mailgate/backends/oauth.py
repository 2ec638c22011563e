"""OAuth2 logins for mail sessions, as seen from the backend layer.

The backend layer does not know how tokens are obtained: it asks a :class:`TokenProvider`
(implemented by ``mailgate.services.oauth2.tokens`` and injected through
:class:`~mailgate.backends.registry.BackendOptions`) for a valid token whenever a session logs in.

:class:`OAuth2Source` is the :class:`~mailgate.backends.imap.session.CredentialSource` of an OAuth2
account. Besides the usual call it offers ``refreshed()``: ``open_session`` calls it once when the
server refused a token we believed valid (revoked early, clock skew); it names the refused token,
so a refresh another process already made is reused rather than repeated.

A token endpoint that refuses to issue a token raises :class:`TokenRequestFailed`, an
:class:`~mailgate.errors.AuthenticationError` carrying the facts of the request
(``token_request``: url, grant, provider, status, response, ...) that the runner reports in
``lastError.tokenRequest``.
"""

from __future__ import annotations

from typing import Protocol

from mailgate.backends.imap.session import Credentials
from mailgate.errors import AuthenticationError


class TokenProvider(Protocol):
    """Hands out valid OAuth2 access tokens for accounts."""

    async def access_token(self, account: str, *, refused: str | None = None) -> tuple[str, str]:
        """``(login user, access token)``, refreshed when (nearly) expired.

        ``refused`` is a token a server has just turned down: the answer is then another token,
        refreshed now unless another caller already replaced the refused one.
        """
        ...


class TokenRequestFailed(AuthenticationError):
    """The provider's token endpoint refused to issue a token (e.g. ``invalid_grant``)."""

    def __init__(
        self,
        message: str,
        *,
        token_request: dict[str, object],
        server_response: str | None = None,
    ) -> None:
        super().__init__(message, server_response=server_response or message)
        self.token_request = token_request


class OAuth2Source:
    """Credential source of an OAuth2 account: a fresh token from the provider at every login."""

    def __init__(self, tokens: TokenProvider, account: str) -> None:
        self._tokens = tokens
        self._account = account
        self._last: str | None = None

    async def __call__(self) -> Credentials:
        user, self._last = await self._tokens.access_token(self._account)
        return Credentials(user, self._last, kind="oauth2")

    async def refreshed(self) -> Credentials:
        """Another token, for one retry after the server refused the last one handed out."""
        user, self._last = await self._tokens.access_token(self._account, refused=self._last)
        return Credentials(user, self._last, kind="oauth2")
