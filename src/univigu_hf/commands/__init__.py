"""The `univigu` commands' handlers (`univigu_hf.cli` parses the arguments and dispatches here)."""

from .generation import caption, generate, joint
from .tools import calibrate_mag_cache, card, demo, push


HANDLERS = {
    "generate": generate,
    "caption": caption,
    "joint": joint,
    "demo": demo,
    "calibrate-mag-cache": calibrate_mag_cache,
    "card": card,
    "push": push,
}
