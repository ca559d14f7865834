"""Imported by tests/probes/node_main.py: records the pid of every process that imports it."""
import os

with open(os.environ["MILO_IMPORT_MARKER"], "a") as marker:
    marker.write(f"{os.getpid()}\n")
