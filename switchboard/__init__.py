"""Switchboard: the GraphQL gateway of the agency platform (ASGI app, settings, edge, CLI)."""
