"""Inbound edges: platform webhook payloads turned into events (``meta``), and the
durable inbox every accepted request is written to before it is acknowledged (``inbox``).
"""
