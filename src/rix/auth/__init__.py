"""Who is calling: local accounts, API tokens, login sessions and OpenID Connect tokens.

Authentication answers "who"; what that principal may see is ``rix.access``'s alone.
"""
