"""The radiology workflow across trusts: orders and their matching to studies, the
modality worklist's procedure steps (MPPS), the shared reporting worklist and its
claims, reports and their delivery (SR, HL7 ORU), turnaround against targets with
breach alerts, the reporting rota, and prefetch of priors on order.
"""
