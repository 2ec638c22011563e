"""OAuth2: applications, provider rules, token refresh, user consent and the hosted form."""
