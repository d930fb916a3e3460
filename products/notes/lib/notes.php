<?php
// Runtime settings and helpers of the notes product. The web server passes the settings
// directory in HOSTKIT_CONFIG_DIR: runtime.json (database master, memcached servers) is kept
// in line with the global config by the config agent, secrets.json holds the password.
declare(strict_types=1);

function notes_json(string $file): array
{
    $text = @file_get_contents($file);
    $data = $text === false ? null : json_decode($text, true);
    if (!is_array($data)) {
        throw new RuntimeException("cannot read $file as a JSON object");
    }
    return $data;
}

function notes_settings(): array
{
    $dir = $_SERVER['HOSTKIT_CONFIG_DIR'] ?? getenv('HOSTKIT_CONFIG_DIR') ?: '';
    if ($dir === '') {
        throw new RuntimeException('HOSTKIT_CONFIG_DIR is not set');
    }
    $settings = notes_json("$dir/runtime.json");
    if (empty($settings['db']['host']) || empty($settings['db']['name'])) {
        throw new RuntimeException("$dir/runtime.json has no db.host or db.name");
    }
    $secrets = is_readable("$dir/secrets.json") ? notes_json("$dir/secrets.json") : [];
    $settings['db']['password'] = $secrets['db_password'] ?? '';
    return $settings;
}

// Short time limits: a dead or frozen master must not hold PHP-FPM workers.
function notes_db(array $settings, int $connectTimeout = 2, int $readTimeout = 5): PDO
{
    ini_set('mysqlnd.net_read_timeout', (string) $readTimeout);
    $db = $settings['db'];
    $pdo = new PDO(
        sprintf('mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4',
            $db['host'], (int) ($db['port'] ?? 3306), $db['name']),
        $db['user'] ?? '', $db['password'],
        [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_TIMEOUT => $connectTimeout]);
    $pdo->exec('CREATE TABLE IF NOT EXISTS notes (
        id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
        seq BIGINT UNSIGNED NULL UNIQUE,
        body VARCHAR(500) NOT NULL,
        web VARCHAR(255) NOT NULL,
        at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB');
    return $pdo;
}

// A note, committed before this returns (semi-synchronous replication makes the commit wait
// for a replica's acknowledgement); $seq numbers the writes of the failover tests.
function notes_add(PDO $db, string $body, ?int $seq = null): int
{
    $db->prepare('INSERT INTO notes (seq, body, web) VALUES (?, ?, ?)')
        ->execute([$seq, notes_cut($body, 500), gethostname()]);
    return (int) $db->lastInsertId();
}

// The first $length characters of a UTF-8 text (PHP's mbstring is not required).
function notes_cut(string $text, int $length): string
{
    if (preg_match('/^.{0,' . $length . '}/us', $text, $match) !== 1) {
        throw new RuntimeException('the note is not valid UTF-8');
    }
    return $match[0];
}

function notes_cache(array $settings): Memcached
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
    return $mc;
}

// Page views, counted in memcached (a shared pool: keys are the product's own).
function notes_views(array $settings): int
{
    $mc = notes_cache($settings);
    $mc->add('notes:views', 0);
    $value = $mc->increment('notes:views');
    if ($value === false) {
        throw new RuntimeException('memcached: ' . $mc->getResultMessage());
    }
    return (int) $value;
}

function notes_fail(int $status, string $message): never
{
    http_response_code($status);
    header('Content-Type: text/plain');
    echo "error: $message\n";
    exit;
}
