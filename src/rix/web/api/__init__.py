"""The region's JSON API under ``/api``, one module per concept, for scripts, the EPR and
the portal's own scripts. Routes translate HTTP into calls; they decide nothing themselves.
"""
