"""Fake provider servers (Gmail, Graph) that follow the providers' published API documents."""
