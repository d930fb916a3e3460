"""memcached: the memcached daemon and its tools (memcstat for checks)."""

from image_builders.recipe import Recipe

image = Recipe("memcached", parent="base", roles=("memcached",))

image.install("memcached")
image.enable("memcached")
image.hygiene()
