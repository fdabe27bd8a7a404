"""Audio encoders: waveform (B, S) -> frames (B, T, D). See registry.py for the emotion stream."""

from model.encoders.base import EncodedAudio, FrameEncoder

__all__ = ["EncodedAudio", "FrameEncoder"]
