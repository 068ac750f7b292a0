"""HL7 v2 over MLLP: patient movements now, orders and reports with the workflow.

``mllp`` is the listener and its framing, ``messages`` reads the segments rix needs and
writes acknowledgements, ``adt`` turns ADT transfers into ``rix.routing.transfer``,
``patients`` applies ADT A01/A03/A08/A40 to the trust's records and the MPI, and
``orders`` applies ORM^O01/OMI^O23 through ``rix.workflow.orders``.
"""
