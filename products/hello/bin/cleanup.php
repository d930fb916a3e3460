<?php
// Cron job of the demo product: keeps the visits table to its newest 10000 rows.
declare(strict_types=1);

$_SERVER['HOSTKIT_CONFIG_DIR'] = $argv[1] ?? getenv('HOSTKIT_CONFIG_DIR');
require dirname(__DIR__) . '/lib/runtime.php';

$db = hello_db(hello_settings());
if ($db->query("SHOW TABLES LIKE 'visits'")->fetchColumn() === false) {
    echo date('c') . " cleanup: no visits yet\n";
    exit;
}
// The ids are unsigned: compute the limit as a signed number so that a small table is fine.
$removed = $db->exec('DELETE FROM visits WHERE id <= (SELECT m FROM (
    SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) - 10000 AS m FROM visits) t)');
echo date('c') . " cleanup done, $removed rows removed\n";
