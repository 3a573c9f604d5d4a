"""Load generator and report.

Nothing lives here yet; it arrives once there is a media path to load.
"""
