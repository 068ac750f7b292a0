"""What a stored object says: reading received datasets (header, structure, frames,
the NHS number), and turning pixels into what a caller asks for (transcoding, rendering).
No database and no network here: everything above builds on these.
"""
