<?php
// The web application's side of examples/targeted.ts: mint a token for the page, and write
// lines that push-server delivers to the right browsers.
//
//   $token = push_token((string) $user->id, ['news'], 3600, getenv('PUSH_TOKEN_SECRET'));
//   // in the page: new WebSocket("wss://example.com/push?token=" + encodeURIComponent(token))
//
//   push_to(['user:42'], ['type' => 'invoice.paid', 'id' => 1234]);
//   push_topic('news', ['title' => 'Release 2.0']);

const PUSH_FIFO = '/run/push-server/in.fifo';

function push_base64url(string $bytes): string {
    return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
}

/** A token for one user, valid for $ttl seconds, subscribed to $topics. */
function push_token(string $user, array $topics, int $ttl, string $secret): string {
    $payload = push_base64url(json_encode(
        ['sub' => $user, 'topics' => array_values($topics), 'exp' => time() + $ttl],
        JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR
    ));
    return $payload . '.' . push_base64url(hash_hmac('sha256', $payload, $secret, true));
}

/** Sends $data to every connection of the given addresses ('user:42', 'topic:news'). */
function push_to(array $to, $data, string $fifo = PUSH_FIFO): bool {
    return push_line(['to' => array_values($to), 'data' => $data], $fifo);
}

/** Sends $data to every connection subscribed to $topic. */
function push_topic(string $topic, $data, string $fifo = PUSH_FIFO): bool {
    return push_line(['topic' => $topic, 'data' => $data], $fifo);
}

/**
 * Writes one JSON line. json_encode escapes newlines inside strings, so the line is one line.
 * Returns false when push-server is not running (the message is then not delivered).
 */
function push_line(array $message, string $fifo = PUSH_FIFO): bool {
    $line = json_encode($message, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR) . "\n";
    if (strlen($line) > 4096) {
        // Longer writes are not atomic: lines from concurrent PHP workers could interleave.
        trigger_error('push_line: message over 4096 bytes; lock around the write', E_USER_WARNING);
    }
    if (@filetype($fifo) !== 'fifo') return false;   // 'w' would otherwise create a plain file
    for ($try = 0; $try < 5; $try++) {
        $fp = @fopen($fifo, 'wn');                   // non-blocking: fails at once without a reader
        if ($fp !== false) {
            $ok = fwrite($fp, $line) === strlen($line);   // one write()
            fclose($fp);
            return $ok;
        }
        usleep(10000);                               // the server may be reopening the pipe
    }
    return false;
}
