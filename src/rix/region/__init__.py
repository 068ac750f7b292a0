"""The region's data and its rules: trusts, their sites and sharing agreements, the AE
registry, patient records as each trust knows them, the master patient index that links
one person's records across trusts by NHS number, and the identity a patient carries on
the way out to each trust."""
