"""edge: HAProxy in front of the web tier; the sandbox's stand-in for the CDN and DNS."""

from image_builders.recipe import Recipe

image = Recipe("edge", parent="base", roles=("edge",))

image.install("haproxy")
image.enable("haproxy")
image.hygiene()
