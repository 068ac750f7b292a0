"""rix's JSON API under ``/api``, for scripts, the EPR and the portal's own scripts: one
module per concept (the region's administration and timeline, jobs, imports, orders,
reporting, shares, turnaround). Routes translate HTTP into calls; they decide nothing
themselves.
"""
