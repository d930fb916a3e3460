<?php
// hello: the demo product. Front controller (Apache's FallbackResource sends every path
// that is not a file here): "/" shows which host served the request, the database master
// it used, a row it wrote and read back, and a memcached counter; "/healthz" answers 200
// only when the database and memcached both work, for smoke tests and health checks;
// "/write?n=N" inserts the numbered row N and answers "ok N <db server>" only after the
// commit (the failover tests count which writes were acknowledged).
declare(strict_types=1);

require dirname(__DIR__) . '/lib/runtime.php';

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
header('Cache-Control: no-store');

try {
    $settings = hello_settings();
} catch (RuntimeException $e) {
    hello_fail(503, 'settings: ' . $e->getMessage());
}

if ($path === '/healthz') {
    $problems = [];
    try {
        hello_db($settings)->query('SELECT 1')->fetchColumn();
    } catch (Throwable $e) {
        $problems[] = 'database: ' . $e->getMessage();
    }
    try {
        hello_memcached_roundtrip($settings);
    } catch (Throwable $e) {
        $problems[] = 'memcached: ' . $e->getMessage();
    }
    if ($problems) {
        hello_fail(503, implode('; ', $problems));
    }
    header('Content-Type: text/plain');
    echo "ok " . gethostname() . "\n";
    exit;
}

if ($path === '/write') {
    $n = filter_var($_GET['n'] ?? '', FILTER_VALIDATE_INT, ['options' => ['min_range' => 0]]);
    if ($n === false) {
        hello_fail(400, 'n must be a number >= 0');
    }
    // A server on the private network that does not connect within 1 s or answer within
    // 2 s is an error (the client tries again; by then the settings may name a new master).
    try {
        $db = hello_db($settings, 1, 2);
        $server = hello_write_numbered($db, $n);
    } catch (Throwable $e) {
        hello_fail(503, $e->getMessage());
    }
    header('Content-Type: text/plain');
    echo "ok $n $server\n";
    exit;
}

if ($path !== '/') {
    hello_fail(404, 'not found: ' . $path);
}

try {
    $db = hello_db($settings);
    $db->exec('CREATE TABLE IF NOT EXISTS visits (
        id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
        host VARCHAR(255) NOT NULL,
        at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB');
    $insert = $db->prepare('INSERT INTO visits (host) VALUES (?)');
    $insert->execute([gethostname()]);
    $id = (int) $db->lastInsertId();
    $row = $db->prepare('SELECT host FROM visits WHERE id = ?');
    $row->execute([$id]);
    $readBack = (string) $row->fetchColumn();
    $counter = hello_memcached_roundtrip($settings);
} catch (Throwable $e) {
    hello_fail(503, $e->getMessage());
}

header('Content-Type: text/html; charset=utf-8');
$h = fn (string $s): string => htmlspecialchars($s, ENT_QUOTES);
echo "<!doctype html><title>hello</title>\n";
echo "<h1>hello from " . $h(gethostname()) . "</h1>\n";
echo "<p>served-by: <span id=\"served-by\">" . $h(gethostname()) . "</span></p>\n";
echo "<p>db-master: <span id=\"db-master\">" . $h($settings['db']['host']) . "</span></p>\n";
echo "<p>row: <span id=\"row\">" . $id . " " . $h($readBack) . "</span></p>\n";
echo "<p>memcached-counter: <span id=\"counter\">" . $counter . "</span></p>\n";
