"""Second opinions: a link that opens chosen studies of one patient to one person outside
the region, for a limited time, with every look recorded.

The link is ``<public URL>/s#<token>``: 256 random bits of which only the SHA-256 is
stored. Its holder exchanges the token for a browser session of the share's own, verified
by a PIN first when the share has one. What that session may read is decided by
``rix.access`` alone: the principal ``Principal.of_share`` sees exactly the shared studies
while the share is open, checked in SQL on every request, so expiry holds to the second and
a revocation stops a viewer already open.

``record`` (a share as the index keeps it), ``links`` (the sender's side: create, list,
revoke), ``sessions`` (opening a link), ``pins`` and ``opinions`` (the answer sent back).
"""
