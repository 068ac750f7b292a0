"""HL7 v2 over MLLP: patient movements now, orders and reports with the workflow.

``mllp`` is the listener and its framing, ``messages`` reads the segments rix needs and
writes acknowledgements, ``adt`` turns ADT transfers into ``rix.routing.transfer``.
"""
