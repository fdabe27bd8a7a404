"""The bundled demo corpus: utterances.jsonl, audio/*.flac, and voice.py that regenerates the audio."""
