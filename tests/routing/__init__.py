"""Routing rules, deliveries, patient transfers and the HL7 feed, against real peers."""
