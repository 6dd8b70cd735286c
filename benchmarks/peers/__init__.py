"""Adapters that run the peers.py scenarios against one queue system each (lzq and its peers)."""
