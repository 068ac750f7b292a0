"""The index: a database derived from the object store, and the only SQL in rix.

``schema`` and ``workflow_tables`` declare the tables (``migrations/`` builds them);
``records`` turns a received dataset into rows, ``write`` adds them and
``group_commit`` shares one transaction among concurrent stores; ``queries``,
``attributes`` and ``people`` answer C-FIND, QIDO and the portal's search with DICOM
matching rules, always under an access scope passed in; ``statistics`` counts for the
status page; ``verify`` compares the store with the index. Nothing here knows trusts'
rules or who is asking: the layers above pass what they decide as SQL and hooks.
"""
