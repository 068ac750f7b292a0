"""Changes people make to the region (trusts, sites, AEs, users, agreements, MPI
decisions), each decided by ``rix.access`` and audited: the one service the command line,
the API and the admin pages call.
"""
