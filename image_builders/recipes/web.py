"""web: Apache 2.4 (event MPM) with PHP-FPM, opcache and the MySQL and memcached extensions,
and what the config agent needs (Python 3 with boto3 and jsonschema)."""

from image_builders.recipe import Recipe

image = Recipe("web", parent="base",
               roles=("apache", "php", "product", "config_agent"))

image.install("apache", "php", "config_agent")
image.run("a2dismod -q mpm_prefork || true\n"
          "a2enmod -q mpm_event proxy_fcgi setenvif headers deflate expires status\n"
          "a2enconf -q php8.2-fpm", only="Debian")
image.enable("apache", "php")
image.hygiene()
