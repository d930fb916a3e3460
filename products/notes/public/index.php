<?php
// notes: the second demo product, on the same database cluster and memcached pool as hello.
// "/" lists the newest notes and takes a new one (POST body=...), naming the server that
// answered and the database master it used; "/healthz" answers 200 only when the database and
// memcached work; "/write?n=N" stores numbered note N and answers "ok N <db server>" only
// after the commit (the failover tests count which writes were acknowledged).
declare(strict_types=1);

require dirname(__DIR__) . '/lib/notes.php';

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
header('Cache-Control: no-store');

try {
    $settings = notes_settings();
} catch (RuntimeException $e) {
    notes_fail(503, 'settings: ' . $e->getMessage());
}

if ($path === '/healthz') {
    $problems = [];
    try {
        notes_db($settings)->query('SELECT 1')->fetchColumn();
    } catch (Throwable $e) {
        $problems[] = 'database: ' . $e->getMessage();
    }
    try {
        notes_views($settings);
    } catch (Throwable $e) {
        $problems[] = 'memcached: ' . $e->getMessage();
    }
    if ($problems) {
        notes_fail(503, implode('; ', $problems));
    }
    header('Content-Type: text/plain');
    echo 'ok ' . gethostname() . "\n";
    exit;
}

if ($path === '/write') {
    $n = filter_var($_GET['n'] ?? '', FILTER_VALIDATE_INT, ['options' => ['min_range' => 0]]);
    if ($n === false) {
        notes_fail(400, 'n must be a number >= 0');
    }
    try {
        $db = notes_db($settings, 1, 2);
        notes_add($db, "write $n", $n);
        $server = (string) $db->query('SELECT @@hostname')->fetchColumn();
    } catch (Throwable $e) {
        notes_fail(503, $e->getMessage());
    }
    header('Content-Type: text/plain');
    echo "ok $n $server\n";
    exit;
}

if ($path !== '/') {
    notes_fail(404, 'not found: ' . $path);
}

try {
    $db = notes_db($settings);
    if (($_SERVER['REQUEST_METHOD'] ?? 'GET') === 'POST') {
        $body = trim((string) ($_POST['body'] ?? ''));
        if ($body === '') {
            notes_fail(400, 'body is empty');
        }
        notes_add($db, $body);
    }
    $notes = $db->query('SELECT id, body, web FROM notes ORDER BY id DESC LIMIT 5')->fetchAll();
    $count = (int) $db->query('SELECT COUNT(*) FROM notes')->fetchColumn();
    $views = notes_views($settings);
} catch (Throwable $e) {
    notes_fail(503, $e->getMessage());
}

header('Content-Type: text/html; charset=utf-8');
$h = fn (string $s): string => htmlspecialchars($s, ENT_QUOTES);
echo "<!doctype html><title>notes</title>\n";
echo '<h1>notes on ' . $h(gethostname()) . "</h1>\n";
echo '<p>served-by: <span id="served-by">' . $h(gethostname()) . "</span></p>\n";
echo '<p>db-master: <span id="db-master">' . $h($settings['db']['host']) . "</span></p>\n";
echo '<p>notes: <span id="count">' . $count . '</span>, views: <span id="views">' . $views
    . "</span></p>\n<ul>\n";
foreach ($notes as $note) {
    echo '<li>' . $h((string) $note['body']) . ' <small>(' . $h((string) $note['web'])
        . ")</small></li>\n";
}
echo "</ul>\n<form method=\"post\"><input name=\"body\" maxlength=\"500\"> <button>add</button></form>\n";
