"""The report: its typed shape (`model`), its JSON Schema (`schema`), the gate that judges it (`gate`), its
signature (`signing`), the check of a signed bundle (`verification`) and its rerun (`reproduce`).

Importing the package loads nothing heavy; `reproduce` (which reruns a scan) imports the model stack itself.
"""
