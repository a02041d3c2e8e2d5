"""crunchctl: spectrogram quicklooks and analysis files from IQ recordings.

This module only carries the version; it must stay free of heavy imports.
"""

__version__ = "0.1.0"
