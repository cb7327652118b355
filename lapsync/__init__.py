"""lapsync's shared core: wire format, clock, text rules, roster parsing and web parts.

Both apps stand on it: the laptop app (`lapsync.laptop`) and central (`sync`).
Nothing in the core imports either app.
"""
