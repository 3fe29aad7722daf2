"""The write side's repositories: the SQL the domain's rules need, one module per aggregate.

Each function works in the caller's transaction (an `AsyncConnection`), applies the pure
rules of `domain/` and records the tenant events of the change it makes. The rules never
import this package; it imports them.
"""
