"""The quicklook of one recording: spectrogram numerics, rendering, product files, the per-recording task."""
