import os

# Unit tests and notebooks must never reach a hub or a real checkpoint by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
