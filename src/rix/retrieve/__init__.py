"""The way out: copies of stored instances as a destination must see them (identity,
transfer syntax), the DICOM JSON metadata of WADO-RS, the regional timeline, socket
settings of DICOM connections, and exports to folders and zips.
"""
