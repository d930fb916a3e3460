<?php
// Cron job of notes: keeps the newest 1000 notes that no test numbered.
declare(strict_types=1);

$_SERVER['HOSTKIT_CONFIG_DIR'] = $argv[1] ?? getenv('HOSTKIT_CONFIG_DIR');
require dirname(__DIR__) . '/lib/notes.php';

$db = notes_db(notes_settings());
$removed = $db->exec('DELETE FROM notes WHERE seq IS NULL AND id <= (SELECT m FROM (
    SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) - 1000 AS m FROM notes) t)');
echo date('c') . " prune done, $removed notes removed\n";
