"""The trainer: config, data, optimizer, checkpoints, distributed setup and the loop (``trainer.py``)."""
