"""The clinical record: a finished scan as DICOM objects, filed in the hospital's archive (issue #26).

`dicom_objects` writes the captures and the report; `document` gathers them from a session; `outbox` keeps
them on disk until `stow` has delivered them to the PACS. docs/pacs.md describes the whole path.
"""
