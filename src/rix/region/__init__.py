"""The region: trusts, their sites, AE titles and users, sharing agreements, and the
master patient index that links one person's records across trusts."""
