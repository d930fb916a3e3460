"""monitor: Munin (graphs) and Nagios 4 (alerts), both served by Apache."""

from image_builders.recipe import Recipe

image = Recipe("monitor", parent="base")

image.install("munin", "nagios")
image.enable("munin", "nagios")
image.hygiene()
