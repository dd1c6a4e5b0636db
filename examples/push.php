<?php
// push.php: write push-server FIFO commands from PHP (lib/channels/PROTOCOL.md, "FIFO commands").
//
//   require 'push.php';
//   push_publish('news', ['title' => 'Release 2.0']);     // to subscribers of channel "news"
//   push_to_user('42', ['type' => 'invoice.paid']);       // to every connection of user 42
//   push_disconnect('42');                                // close user 42's connections (4006)
//   push_broadcast('maintenance at 22:00');               // a plain line, to everyone
//   if (!push_publish('news', $big)) error_log(push_last_error());
//
// Each call writes ONE line with ONE write() on a FIFO opened non-blocking: it never waits.
// A write of at most PIPE_BUF (4096) bytes to a pipe is atomic, so lines from concurrent PHP
// workers never interleave. A longer line could be split, so it is refused: send a reference
// instead (an id or a URL the page fetches), or split the content into several publications.
// The FIFO path is $_ENV/getenv('PUSH_FIFO'), else /run/push-server/in.fifo.

const PUSH_DEFAULT_FIFO = '/run/push-server/in.fifo';
/** The largest write the kernel keeps atomic on a pipe (POSIX PIPE_BUF on Linux). */
const PUSH_PIPE_BUF = 4096;
/** The channel name rule of lib/channels/names.ts. */
const PUSH_CHANNEL_PATTERN = '/^[A-Za-z0-9_.:@-]{1,128}$/';
const PUSH_JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

/** Why the last call returned false ('' after a success). */
function push_last_error(?string $set = null): string {
    static $error = '';
    if ($set !== null) $error = $set;
    return $error;
}

/** Publishes $data (any JSON-encodable value) to channel $channel. */
function push_publish(string $channel, $data): bool {
    if (!preg_match(PUSH_CHANNEL_PATTERN, $channel)) {
        return push_fail('channel name must be 1-128 characters of [A-Za-z0-9_.:@-]');
    }
    return push_command(['channel' => $channel, 'data' => $data]);
}

/** Sends $data to every connection of user $user. */
function push_to_user(string $user, $data): bool {
    if ($user === '' || strlen($user) > 128) return push_fail('user id must be 1-128 characters');
    return push_command(['user' => $user, 'data' => $data]);
}

/** Closes every connection of user $user (close code 4006: the client does not reconnect). */
function push_disconnect(string $user): bool {
    if ($user === '' || strlen($user) > 128) return push_fail('user id must be 1-128 characters');
    return push_command(['disconnect' => $user]);
}

/** Broadcasts one plain line to every connection, as the original server does. */
function push_broadcast(string $text): bool {
    if (strpbrk($text, "\r\n") !== false) return push_fail('a broadcast line may not contain a newline');
    if ($text === '') return push_fail('an empty line is not delivered');
    $trimmed = ltrim($text, " \t");
    if ($trimmed !== '' && $trimmed[0] === '{') {
        // The server reads a line starting with { as JSON: it must parse, and not be a command.
        $value = json_decode($text, true);
        if (!is_array($value)) return push_fail('a line starting with { must be valid JSON');
        foreach (['channel', 'user', 'disconnect'] as $key) {
            if (array_key_exists($key, $value)) return push_fail("a broadcast object may not have the key \"$key\"");
        }
    }
    return push_write($text . "\n");
}

function push_command(array $command): bool {
    try {
        $line = json_encode($command, PUSH_JSON_FLAGS) . "\n";   // newlines in strings are escaped
    } catch (JsonException $e) {
        return push_fail('cannot encode as JSON: ' . $e->getMessage());
    }
    return push_write($line);
}

function push_fail(string $reason): bool {
    push_last_error($reason);
    return false;
}

/** One write() of one whole line, never blocking. */
function push_write(string $line): bool {
    $bytes = strlen($line);
    if ($bytes > PUSH_PIPE_BUF) {
        return push_fail("line of $bytes bytes is over PIPE_BUF (" . PUSH_PIPE_BUF . '), so it could be '
            . 'split between writers; publish a reference (an id or URL) instead');
    }
    $fifo = getenv('PUSH_FIFO') ?: PUSH_DEFAULT_FIFO;
    if (@filetype($fifo) !== 'fifo') return push_fail("$fifo is not a FIFO (is push-server running?)");
    $fp = @fopen($fifo, 'wn');                  // O_NONBLOCK: fails at once when nobody reads
    if ($fp === false) return push_fail("push-server is not reading $fifo");
    stream_set_blocking($fp, false);
    $written = @fwrite($fp, $line);              // <= PIPE_BUF: all or nothing
    fclose($fp);
    if ($written !== $bytes) return push_fail("the FIFO is full (push-server is behind); line not written");
    push_last_error('');
    return true;
}
