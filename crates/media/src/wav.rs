//! 16-bit PCM WAV files.
