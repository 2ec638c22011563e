"""Builds the OAuth2 services of a process (used by ``runtime/container.py``).

Two steps because of who needs whom: the token service must exist before the backends (it is
their :class:`~mailgate.backends.oauth.TokenProvider`), the consent flow and hosted form after
the account service (they register accounts through it).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from mailgate.services.accounts import AccountService
from mailgate.services.oauth2.apps import AppService
from mailgate.services.oauth2.client import OAuth2Client
from mailgate.services.oauth2.consent import OAuth2Accounts
from mailgate.services.oauth2.form import HostedForm
from mailgate.services.oauth2.tokens import TokenService
from mailgate.services.settings import SettingsService
from mailgate.store.accounts import AccountStore
from mailgate.store.crypto import SecretBox


@dataclass
class OAuth2:
    apps: AppService
    tokens: TokenService
    client: OAuth2Client
    consent: OAuth2Accounts | None = None
    form: HostedForm | None = None

    def attach(self, accounts: AccountService, settings: SettingsService, secret: str) -> None:
        """Wire the consent flow and the hosted form to the account service."""
        self.consent = OAuth2Accounts(
            accounts.redis, self.apps, settings, accounts, client=self.client
        )
        self.form = HostedForm(settings, secret, accounts, self.consent)
        accounts.oauth2 = self.consent


def build_oauth2(redis: Redis, box: SecretBox, accounts: AccountStore) -> OAuth2:
    client = OAuth2Client()
    apps = AppService(redis, box, accounts)
    return OAuth2(apps=apps, tokens=TokenService(redis, accounts, apps, client), client=client)
