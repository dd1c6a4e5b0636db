<?php
// Mints push-server tokens in PHP: an HS256 JWT (RFC 7519) with the claims lib/auth/token.ts
// checks, signed with the same secret the server reads from PUSH_TOKEN_SECRET (or
// --token-secret). Render the token into the page; the page sends it as the first message of the
// push.v1 protocol: {"op":"auth","token":"..."}.
//
//   require 'push_token.php';
//   $token = push_mint_token(getenv('PUSH_TOKEN_SECRET'), (string) $user->id,
//                            ['news', 'user:' . $user->id, 'room.*'], 3600);
//
// Grants in $channels: an exact channel name ('news', 'user:42'), or a prefix ending in '*'
// ('news.*' allows news.sport and news.sport.uk, not news; '*' alone allows every channel).

/** base64url without padding (RFC 7515 §2). */
function push_token_base64url(string $bytes): string {
    return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
}

/**
 * A token for user $sub, allowed the channel grants $channels, valid for $ttl seconds from $now
 * (default: the current time). The secret must be at least 32 bytes (RFC 7518 §3.2).
 */
function push_mint_token(string $secret, string $sub, array $channels, int $ttl, ?int $now = null): string {
    if (strlen($secret) < 32) {
        throw new InvalidArgumentException('push_mint_token: the secret must be at least 32 bytes');
    }
    if ($sub === '') throw new InvalidArgumentException('push_mint_token: $sub is empty');
    if ($ttl <= 0) throw new InvalidArgumentException('push_mint_token: $ttl must be positive');
    foreach ($channels as $grant) {
        if (!is_string($grant) || $grant === '') {
            throw new InvalidArgumentException('push_mint_token: each channel grant is a non-empty string');
        }
    }
    $iat = $now ?? time();
    $flags = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_LINE_TERMINATORS
        | JSON_THROW_ON_ERROR;
    $header = push_token_base64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT'], $flags));
    $claims = push_token_base64url(json_encode([
        'sub' => $sub,
        'channels' => array_values($channels),
        'iat' => $iat,
        'exp' => $iat + $ttl,
    ], $flags));
    $signature = hash_hmac('sha256', "$header.$claims", $secret, true);
    return "$header.$claims." . push_token_base64url($signature);
}
