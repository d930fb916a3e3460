"""db: MariaDB server with mariabackup and zstd for streamed, compressed backups."""

from image_builders.recipe import Recipe

image = Recipe("db", parent="base", roles=("mysql", "mysql_backup"))

image.install("mysql")
image.enable("mysql")
image.hygiene()
