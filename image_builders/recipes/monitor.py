"""monitor: Munin (graphs) and Nagios 4 (alerts), both served by Apache, and what the
failover watcher needs (Python 3 with boto3, jsonschema and PyMySQL)."""

from image_builders.recipe import Recipe

image = Recipe("monitor", parent="base", roles=("failover_watcher",))

image.install("munin", "nagios", "failover_watcher")
image.enable("munin", "nagios")
image.hygiene()
