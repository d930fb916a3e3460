<?php
// Runtime settings of the product on this host. The web server passes the directory in
// HOSTKIT_CONFIG_DIR; runtime.json (database master, memcached servers) is rewritten
// atomically by the config agent, secrets.json (the database password) is written once.
declare(strict_types=1);

function hello_read_json(string $file): array
{
    $text = @file_get_contents($file);
    if ($text === false) {
        throw new RuntimeException("cannot read $file");
    }
    $data = json_decode($text, true);
    if (!is_array($data)) {
        throw new RuntimeException("$file is not a JSON object");
    }
    return $data;
}

function hello_settings(): array
{
    $dir = $_SERVER['HOSTKIT_CONFIG_DIR'] ?? getenv('HOSTKIT_CONFIG_DIR') ?: '';
    if ($dir === '') {
        throw new RuntimeException('HOSTKIT_CONFIG_DIR is not set');
    }
    $settings = hello_read_json("$dir/runtime.json");
    $secrets = is_readable("$dir/secrets.json") ? hello_read_json("$dir/secrets.json") : [];
    if (empty($settings['db']['host']) || empty($settings['db']['name'])) {
        throw new RuntimeException("$dir/runtime.json has no db.host or db.name");
    }
    $settings['db']['password'] = $secrets['db_password'] ?? '';
    return $settings;
}

// A connection to the product's database. A database that is gone or frozen must not hold a
// PHP-FPM worker for long (health checks keep coming, and a pool of blocked workers serves
// nobody after the failover either): connecting and each answer have time limits.
function hello_db(array $settings, int $connectTimeout = 2, int $readTimeout = 5): PDO
{
    ini_set('mysqlnd.net_read_timeout', (string) $readTimeout);
    $db = $settings['db'];
    $dsn = sprintf('mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4',
        $db['host'], (int) ($db['port'] ?? 3306), $db['name']);
    return new PDO($dsn, $db['user'] ?? '', $db['password'], [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_TIMEOUT => $connectTimeout,
    ]);
}

// Insert row number $n into `writes` (autocommit: the statement returns after the commit,
// which semi-synchronous replication makes wait for a replica's acknowledgement) and name
// the database server that took it. The table is made on first use.
function hello_write_numbered(PDO $db, int $n): string
{
    $insert = fn () => $db->prepare('INSERT INTO writes (n, web) VALUES (?, ?)')
        ->execute([$n, gethostname()]);
    try {
        $insert();
    } catch (PDOException $e) {
        if ((int) ($e->errorInfo[1] ?? 0) !== 1146) {
            throw $e;
        }
        $db->exec('CREATE TABLE IF NOT EXISTS writes (
            n BIGINT UNSIGNED PRIMARY KEY,
            web VARCHAR(255) NOT NULL,
            at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB');
        $insert();
    }
    return (string) $db->query('SELECT @@hostname')->fetchColumn();
}

function hello_memcached_roundtrip(array $settings): int
{
    $servers = $settings['memcached'] ?? [];
    if (!$servers) {
        throw new RuntimeException('no memcached servers configured');
    }
    $mc = new Memcached();
    $mc->setOption(Memcached::OPT_CONNECT_TIMEOUT, 500);
    foreach ($servers as $server) {
        [$host, $port] = array_pad(explode(':', $server, 2), 2, '11211');
        $mc->addServer($host, (int) $port);
    }
    $mc->add('hello:counter', 0);
    $value = $mc->increment('hello:counter');
    if ($value === false) {
        throw new RuntimeException('increment failed: ' . $mc->getResultMessage());
    }
    return (int) $value;
}

function hello_fail(int $status, string $message): never
{
    http_response_code($status);
    header('Content-Type: text/plain');
    echo "error: $message\n";
    exit;
}
