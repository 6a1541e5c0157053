"""Live-room domain: chat, reactions, pins, presence. Plain Python, no I/O, no clock reads."""
